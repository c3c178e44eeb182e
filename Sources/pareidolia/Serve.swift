import ArgumentParser
import Foundation
import Models
import Server

/// `pareidolia serve`: the live workbench in the browser (a thin front for `Server.WorkbenchServer`).
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the live workbench: type a prompt, watch it form, scrub the steps, click a word, fork the seed.",
        discussion: "Listens on 127.0.0.1 only, unless --listen ADDR is given, which then needs --token. Runs are ordinary trace folders under --runs (report, merge, clip and remedy read them).")

    @Option(name: .long, help: "Model folder (diffusers layout or a single-file checkpoint; default: the embedded demo model).")
    var model: String?

    @Option(name: .long, help: "Port (default 7860).")
    var port = 7860

    @Option(name: .long, help: "Serve beyond this machine on this address (e.g. 0.0.0.0); needs --token.")
    var listen: String?

    @Option(name: .long, help: "A secret (16+ characters) every request must carry (Authorization: Bearer, or ?token= in the page's address).")
    var token: String?

    @Option(name: .long, help: "Where runs are written, one folder each (default ./pareidolia-runs).")
    var runs = "pareidolia-runs"

    @Option(name: .long, parsing: .singleValue, help: "A textual-inversion file the page may use, by its trigger (PATH or word=PATH; with the default model also a name from Assets/demo-embeddings, all of which it offers when none is given); repeatable.")
    var embedding: [String] = []

    func run() throws {
        let path = try modelPath(model)
        var config = ServerConfiguration(runsFolder: runs, modelPath: path)
        config.port = port
        config.token = token
        if let listen { config.host = listen }
        // The demo model, named or not, brings its characters and the settings its card measures with.
        let isDemo = isDemoModel(model)
        let demo = isDemo && embedding.isEmpty ? ((try? DefaultModel.embeddings()) ?? [:]).keys.sorted() : []
        config.embeddingFiles = try embeddingFiles(embedding + demo, model: model)
        if isDemo { config.defaults = .demoModel }
        do { try config.validate() } catch { throw CLIError("\(error)") }
        let loaded: StableDiffusionModel
        do { loaded = try StableDiffusionModel.load(path, vaeEncoder: false) } catch { throw CLIError("--model \(path): \(error)") }
        let server: WorkbenchServer
        do { server = try WorkbenchServer(configuration: config, model: loaded) } catch { throw CLIError("\(error)") }
        let address = config.host.contains(":") ? "[\(config.host)]" : config.host
        print("serving the workbench on http://\(address == "0.0.0.0" ? "127.0.0.1" : address):\(port)/\(token.map { "?token=\($0)" } ?? "") (Ctrl-C stops)")
        fflush(stdout)
        let done = DispatchSemaphore(value: 0)
        final class Outcome: @unchecked Sendable { var error: Error? }
        let outcome = Outcome()
        Task.detached {
            do { try await server.run() } catch { outcome.error = error }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw CLIError("serve: \(error)") }
    }
}
