import Analysis
import ArgumentParser
import Foundation
import Models

struct Pareidolia: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pareidolia",
        abstract: "Look inside Stable Diffusion 1.x: generate with a recorded trace, inspect checkpoints, tokenize prompts.",
        subcommands: [Generate.self, Report.self, Clip.self, Inspect.self, Tokenize.self, Embeddings.self, Merge.self, Remedy.self, Serve.self]
    )
}

/// A user-facing failure: printed as one line, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The trace folders named on a command line (a sweep folder stands for each seed's trace): a
/// one-line error for a path that is not there or holds no trace.
func traceFolders(_ paths: [String]) throws -> [String] {
    for p in paths where !FileManager.default.fileExists(atPath: p) { throw CLIError("\(p): no such folder") }
    let folders: [String]
    do { folders = try paths.flatMap(TraceWordMaps.traceFolders) } catch { throw CLIError("\(error)") }
    guard !folders.isEmpty else { throw CLIError("\(paths.joined(separator: " ")): no trace (a folder with run.json) found") }
    return folders
}

/// `--embedding` values as files: with the default model a bare name (`alex`) that is not a file
/// names one of its own textual-inversion files.
func embeddingFiles(_ specs: [String], model: String?) throws -> [String] {
    guard isDemoModel(model) else { return specs }
    let known = (try? DefaultModel.embeddings()) ?? [:]
    return try specs.map { spec in
        if FileManager.default.fileExists(atPath: spec) || spec.contains("=") || spec.contains("/") { return spec }
        guard let path = known[spec] else {
            throw CLIError("--embedding \(spec): no such file, and not one of the default model's embeddings (\(known.keys.sorted().joined(separator: ", ")))")
        }
        return path
    }
}

/// Whether `--model` (nil: not given) is the embedded demo model, named or not.
func isDemoModel(_ given: String?) -> Bool { given.map { DefaultModel.isDefaultModel($0) } ?? true }

/// `--model`, or the embedded default model when none is given.
func modelPath(_ given: String?) throws -> String {
    if let given { return given }
    do { return try DefaultModel.modelPath() } catch { throw CLIError("\(error)") }
}
