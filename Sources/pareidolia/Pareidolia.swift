import ArgumentParser

struct Pareidolia: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pareidolia",
        abstract: "Look inside Stable Diffusion 1.x: generate with a recorded trace, inspect checkpoints, tokenize prompts.",
        subcommands: [Generate.self, Inspect.self, Tokenize.self, Embeddings.self, Merge.self]
    )
}

/// A user-facing failure: printed as one line, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
