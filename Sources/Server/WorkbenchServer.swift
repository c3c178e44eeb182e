import Analysis
import CAssets
import Diffusion
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Models
import Workbench

/// `pareidolia serve`: the page, a JSON API over the run queue and the runs on disk, and one
/// WebSocket that pushes the queue, each step and each x̂₀ frame (docs/SERVE.md).
///
/// Routes (all behind `RequestGuard`):
///   GET  /, /app.js, /app.css            the page
///   GET  /api/state                       the queue and the embeddings a run may use
///   GET  /api/runs                        runs on disk, newest first
///   POST /api/runs                        queue a run (`RunRequest` JSON) → {id, position}
///   POST /api/runs/:id/cancel             cancel a queued or running run
///   GET  /api/runs/:id                    its request.json and trace run.json
///   GET  /api/runs/:id/image.png          the image
///   GET  /api/runs/:id/steps/:n           x̂₀ of evaluation n (the cheap preview)
///   GET  /api/runs/:id/maps?upto=N        the prompt words' DAAM maps summed over evaluations 0…N
///   GET  /api/runs/:id/merge?a=W&b=W      do two subjects land on one region? (the `merge` verdict)
///   POST /api/infotext                    a dropped PNG's (or text's) recipe as form fields
///   GET  /ws                              the event socket
public final class WorkbenchServer: @unchecked Sendable {
    public let configuration: ServerConfiguration
    let queue: RunQueue
    let folders: RunFolders
    let hub = EventHub()

    public init(configuration: ServerConfiguration, model: StableDiffusionModel) throws {
        try configuration.validate()
        self.configuration = configuration
        folders = try RunFolders(path: configuration.runsFolder)
        // Each embedding read once now, for its trigger: a bad file stops the server at the start.
        var offered: [(trigger: String, file: String)] = []
        for file in configuration.embeddingFiles {
            let e = try EmbeddingLoader.load(file, tokenizer: model.tokenizer, width: model.textEncoder.config.hiddenSize)
            guard !offered.contains(where: { $0.trigger == e.trigger }) else {
                throw ServerConfiguration.Invalid(description: "--embedding \(file): a second embedding with the trigger \(e.trigger)")
            }
            offered.append((e.trigger, file))
        }
        queue = RunQueue(model: model, configuration: configuration, folders: folders, hub: hub, embeddings: offered)
    }

    /// The Hummingbird application (tests run it with HummingbirdTesting).
    public func application(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: BasicWebSocketRequestContext.self)
        router.middlewares.add(RequestGuard<BasicWebSocketRequestContext>(configuration: configuration, socketPaths: ["/ws"]))
        addPage(router)
        addAPI(router)
        addSocket(router)
        return Application(router: router, server: .http1WebSocketUpgrade(webSocketRouter: router),
                           configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "pareidolia"),
                           onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) })
    }

    /// Starts the engine thread, serves until the process is stopped.
    public func run() async throws {
        queue.start()
        defer { queue.stop() }
        try await application().runService()
    }

    func startEngine() { queue.start() }
    func stopEngine() { queue.stop() }

    // MARK: - routes

    private func addPage(_ router: Router<BasicWebSocketRequestContext>) {
        @Sendable func asset(_ get: (UnsafeMutablePointer<Int>) -> UnsafePointer<UInt8>?, _ type: String) -> Response {
            var size = 0
            guard let p = get(&size) else { return Response(status: .notFound) }
            return Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: UnsafeBufferPointer(start: p, count: size))))
        }
        router.get("/") { _, _ in asset(pd_asset_serve_index, "text/html; charset=utf-8") }
        router.get("/app.js") { _, _ in asset(pd_asset_serve_script, "text/javascript; charset=utf-8") }
        router.get("/app.css") { _, _ in asset(pd_asset_serve_style, "text/css; charset=utf-8") }
    }

    private func addAPI(_ router: Router<BasicWebSocketRequestContext>) {
        let queue = self.queue, folders = self.folders, maxBody = configuration.maxBodyBytes
        router.get("/api/state") { _, _ in Self.json(queue.state()) }
        router.get("/api/runs") { _, _ in Self.json(["runs": folders.list()]) }
        router.post("/api/runs") { request, _ -> Response in
            var request = request
            let body: ByteBuffer
            do { body = try await request.collectBody(upTo: maxBody) } catch {
                return Self.problem(.contentTooLarge, "the request is larger than \(maxBody) bytes")
            }
            let decoded: RunRequest
            do { decoded = try JSONDecoder().decode(RunRequest.self, from: Data(buffer: body)) } catch {
                return Self.problem(.badRequest, "expected a run as JSON ({\"prompt\": …, \"seed\": …}): \(error)")
            }
            do {
                let (id, position) = try queue.submit(decoded)
                return Self.json(["id": id, "position": position], status: .accepted)
            } catch { return Self.problem(.badRequest, "\(error)") }
        }
        let maxUpload = configuration.maxUploadBytes
        router.post("/api/infotext") { request, _ -> Response in
            var request = request
            guard let body = try? await request.collectBody(upTo: maxUpload) else {
                return Self.problem(.contentTooLarge, "the image is larger than \(maxUpload / 1_048_576) MB")
            }
            struct Upload: Decodable { let png_base64: String?; let text: String? }
            guard let upload = try? JSONDecoder().decode(Upload.self, from: Data(buffer: body)),
                  let data = upload.png_base64.flatMap({ Data(base64Encoded: $0) }) ?? upload.text.map({ Data($0.utf8) }) else {
                return Self.problem(.badRequest, "expected {\"png_base64\": …} or {\"text\": …}")
            }
            do { return Self.json(Self.formFields(try InfotextFile.recipe(data: data, source: "the dropped file"))) } catch {
                return Self.problem(.badRequest, "\(error)")
            }
        }
        router.post("/api/runs/:id/cancel") { _, context -> Response in
            guard let id = context.parameters.get("id"), RunFolders.isValidID(id) else { return Self.problem(.notFound, "no such run") }
            return queue.cancel(id) ? Self.json(["id": id, "cancelled": true]) : Self.problem(.conflict, "run \(id) is neither queued nor running")
        }
        router.get("/api/runs/:id") { _, context -> Response in
            guard let id = context.parameters.get("id"), let requestPath = folders.path(id, .request),
                  let record = Self.readJSON(requestPath) else { return Self.problem(.notFound, "no such run") }
            var out: [String: Any] = ["id": id, "request": record]
            if let status = queue.status(of: id) { out["status"] = status.rawValue }
            if let p = folders.path(id, .runJSON), let run = Self.readJSON(p) { out["trace"] = run }
            return Self.json(out)
        }
        router.get("/api/runs/:id/image.png") { _, context -> Response in
            Self.file(folders.path(context.parameters.get("id") ?? "", .image), type: "image/png")
        }
        router.get("/api/runs/:id/steps/:n") { _, context -> Response in
            guard let n = context.parameters.get("n").flatMap(Int.init), (0..<100_000).contains(n) else { return Self.problem(.notFound, "no such step") }
            return Self.file(folders.path(context.parameters.get("id") ?? "", .step(n)), type: "image/png")
        }
        router.get("/api/runs/:id/merge") { request, context -> Response in
            guard let id = context.parameters.get("id"), let runJSON = folders.path(id, .runJSON) else { return Self.problem(.notFound, "no such run") }
            guard let a = request.uri.queryParameters["a"].map(String.init), let b = request.uri.queryParameters["b"].map(String.init),
                  !a.isEmpty, !b.isEmpty, a.count <= 100, b.count <= 100 else { return Self.problem(.badRequest, "give two words: ?a=…&b=…") }
            let trace = URL(fileURLWithPath: runJSON).deletingLastPathComponent().path
            do { return Self.json(try MergePayload.make(trace: trace, a: a, b: b)) } catch { return Self.problem(.badRequest, "\(error)") }
        }
        router.get("/api/runs/:id/maps") { request, context -> Response in
            guard let id = context.parameters.get("id"), folders.path(id, .attention) != nil,
                  let trace = folders.path(id, .runJSON).map({ URL(fileURLWithPath: $0).deletingLastPathComponent().path }) else {
                return Self.problem(.notFound, "no maps for this run (yet)")
            }
            let upto = request.uri.queryParameters["upto"].flatMap { Int($0) }
            do { return Self.json(try WordMapsPayload.make(trace: trace, upto: upto)) } catch {
                return Self.problem(.notFound, "\(error)")
            }
        }
    }

    private func addSocket(_ router: Router<BasicWebSocketRequestContext>) {
        let hub = self.hub, queue = self.queue, maxMessage = configuration.maxSocketMessageBytes
        router.ws("/ws") { inbound, outbound, _ in
            let (id, events) = hub.subscribe()
            defer { hub.unsubscribe(id) }
            try await outbound.write(.text(ServerEvent.jsonString(queue.state())))
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The page sends nothing the server needs; reading (bounded) notices when it leaves.
                group.addTask { for try await _ in inbound.messages(maxSize: maxMessage) {} }
                group.addTask {
                    for await event in events {
                        switch event {
                        case let .text(s): try await outbound.write(.text(s))
                        case let .binary(b): try await outbound.write(.binary(ByteBuffer(bytes: b)))
                        }
                    }
                }
                _ = try await group.next()
                group.cancelAll()
            }
        }
    }

    /// A recipe as the page's form fields, with what it warns about.
    static func formFields(_ r: Infotext.Recipe) -> [String: Any] {
        let s = r.settings
        var out: [String: Any] = ["prompt": s.prompt, "negative_prompt": s.negativePrompt, "warnings": r.warnings]
        if r.given.contains("seed") { out["seed"] = s.seed }
        if r.given.contains("steps") { out["steps"] = s.steps }
        if r.given.contains("guidance") { out["guidance"] = s.guidance }
        if r.given.contains("size") { out["width"] = s.width; out["height"] = s.height }
        if let problem = r.samplerProblem { out["warnings"] = r.warnings + [problem] }
        if r.given.contains("sampler") {
            switch s.samplerChoice {
            case let .diffusers(k): out["sampler"] = k.rawValue
            case let .a1111(a): out["sampler"] = a.sampler.rawValue; out["schedule"] = a.schedule.rawValue
            }
        }
        return out
    }

    // MARK: - responses

    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func problem(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(["error": message], status: status)
    }

    static func file(_ path: String?, type: String) -> Response {
        guard let path, let data = FileManager.default.contents(atPath: path) else { return problem(.notFound, "not found") }
        return Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func readJSON(_ path: String) -> [String: Any]? {
        FileManager.default.contents(atPath: path).flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
    }
}

extension ServerEvent {
    static func jsonString(_ object: [String: Any]) -> String {
        if case let .text(s) = ServerEvent.json(object) { return s }
        return "{}"
    }
}

/// The prompt's words and their DAAM maps (the trace's `cross`, each word's sub-tokens averaged,
/// summed over evaluations 0…upto), as bytes the page draws and ranks: one scale for all words
/// (maps[w] / max over every word · 255), so values compare across words at a pixel; the page
/// normalises each word's map on its own for display.
enum WordMapsPayload {
    static func make(trace: String, upto: Int?) throws -> [String: Any] {
        let maps = try TraceWordMaps(directory: trace)
        let e = maps.evaluations
        guard e > 0 else { return ["words": [], "width": maps.width, "height": maps.height, "evaluations": 0, "maps": ""] }
        let last = min(max(upto ?? e - 1, 0), e - 1)
        let n = maps.height * maps.width
        var summed = [[Float]](repeating: [Float](repeating: 0, count: n), count: maps.words.count)
        for w in maps.words.indices {
            for ev in 0...last { for i in 0..<n { summed[w][i] += maps.maps[w][ev][i] } }
        }
        let top = summed.flatMap { $0 }.max() ?? 0
        let scale = top > 0 ? 255 / top : 0
        var bytes = [UInt8]()
        bytes.reserveCapacity(summed.count * n)
        for m in summed { for v in m { bytes.append(UInt8(min(max(v * scale, 0), 255).rounded())) } }
        return ["words": maps.words.map(\.label), "width": maps.width, "height": maps.height, "evaluations": e,
                "upto": last, "maps": Data(bytes).base64EncodedString()]
    }
}

/// The `merge` verdict for two subjects of one run: their maps' overlap at every evaluation, from
/// when they compete for one region (if they do), and the sentence `pareidolia merge` prints.
enum MergePayload {
    static func make(trace: String, a: String, b: String) throws -> [String: Any] {
        let study = try PairStudy(folders: [trace], a: a, b: b)
        let timeline = study.timelines[0]
        var out: [String: Any] = ["a": a, "b": b, "verdict": study.verdict.sentence, "merged": timeline.mergedFrom != nil,
                                  "iou": timeline.overlaps.map(\.iou), "pearson": timeline.overlaps.map(\.pearson)]
        if let k = timeline.mergedFrom { out["merged_from"] = k + 1 }
        if let note = study.note { out["note"] = note }
        return out
    }
}
