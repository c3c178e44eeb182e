import Diffusion
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Models
import NIOCore
import Testing
import TestSupport
@testable import Server

/// `pareidolia serve` as a page and a person use it: the routes, the WebSocket protocol and the
/// security rules (docs/SERVE.md), on the tiny test model.
@Suite("pareidolia serve", .serialized)
struct ServerTests {
    static let model = try? StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)

    static func makeServer(token: String? = nil, configure: (inout ServerConfiguration) -> Void = { _ in }) throws -> (WorkbenchServer, URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-serve-\(UUID().uuidString)")
        var c = ServerConfiguration(runsFolder: dir.path, modelPath: Fixtures.path("tiny-sd"))
        c.port = 0
        c.token = token
        configure(&c)
        return (try WorkbenchServer(configuration: c, model: try #require(model)), dir)
    }

    /// A state-changing request as the page sends it (same origin, JSON).
    static let pageHeaders: HTTPFields = [.origin: "http://localhost", .contentType: "application/json"]

    static func body(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    @Test("the page and its assets, with a Content-Security-Policy of 'self'")
    func page() async throws {
        let (server, dir) = try Self.makeServer()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await server.application().test(.live) { client in
            for (path, type) in [("/", "text/html"), ("/app.js", "text/javascript"), ("/app.css", "text/css")] {
                try await client.execute(uri: path, method: .get) { r in
                    #expect(r.status == .ok, "\(path)")
                    #expect(r.headers[.contentType]?.hasPrefix(type) == true)
                    #expect(r.headers[.contentSecurityPolicy]?.hasPrefix("default-src 'self'") == true)
                    #expect(r.body.readableBytes > 500)
                }
            }
            let html = try await client.execute(uri: "/", method: .get) { String(buffer: $0.body) }
            #expect(!html.contains("http://") && !html.contains("https://"), "the page loads nothing from elsewhere")
            #expect(!html.contains("<script>") && !html.contains("style="), "no inline script or style (the CSP forbids them)")
        }
    }

    @Test("Host, Origin (never null), JSON only, bounded bodies")
    func requestRules() async throws {
        let (server, dir) = try Self.makeServer()
        defer { try? FileManager.default.removeItem(at: dir) }
        let run = #"{"prompt": "a witch", "steps": 2, "seed": 1}"#
        try await server.application().test(.live) { client in
            for origin in [nil, "null", "http://evil.example", "http://localhost:1", "file://"] as [String?] {
                var h: HTTPFields = [.contentType: "application/json"]
                if let origin { h[.origin] = origin }
                try await client.execute(uri: "/api/runs", method: .post, headers: h, body: Self.body(run)) { r in
                    #expect(r.status == .forbidden, "Origin \(origin ?? "absent") must be refused")
                }
            }
            var form = Self.pageHeaders
            form[.contentType] = "application/x-www-form-urlencoded"
            try await client.execute(uri: "/api/runs", method: .post, headers: form, body: Self.body(run)) { r in
                #expect(r.status == .unsupportedMediaType)
            }
            let huge = #"{"prompt": ""# + String(repeating: "a", count: 100_000) + #""}"#
            try await client.execute(uri: "/api/runs", method: .post, headers: Self.pageHeaders, body: Self.body(huge)) { r in
                #expect(r.status == .contentTooLarge)
            }
            for bad in [#"{"prompt": "x", "steps": 0}"#, #"{"prompt": "x", "width": 63}"#, #"{"prompt": "x", "sampler": "nonsense"}"#,
                        #"{"prompt": ""}"#, #"{"prompt": "x", "parent": "../../etc"}"#, "not json"] {
                try await client.execute(uri: "/api/runs", method: .post, headers: Self.pageHeaders, body: Self.body(bad)) { r in
                    #expect(r.status == .badRequest, "\(bad)")
                    #expect(String(buffer: r.body).contains("error"))
                }
            }
        }
    }

    @Test("a DNS-rebinding page reaches us under its own name: refused by Host")
    func hostRule() throws {
        var c = ServerConfiguration(runsFolder: "/tmp/x", modelPath: "/tmp/m")
        c.port = 7860
        let guardian = RequestGuard<BasicRequestContext>(configuration: c, socketPaths: ["/ws"])
        func request(_ authority: String?, _ path: String = "/api/state") -> Request {
            Request(head: HTTPRequest(method: .get, scheme: "http", authority: authority, path: path), body: .init(buffer: ByteBuffer()))
        }
        #expect(guardian.refusal(of: request("evil.example:7860"))?.status == .forbidden)
        #expect(guardian.refusal(of: request("localhost.evil.example:7860"))?.status == .forbidden)
        #expect(guardian.refusal(of: request(nil))?.status == .forbidden)
        #expect(guardian.refusal(of: request("127.0.0.1:7860")) == nil)
        // The socket's upgrade is a GET, but it needs the page's Origin all the same.
        #expect(guardian.refusal(of: request("127.0.0.1:7860", "/ws"))?.status == .forbidden)
    }

    @Test("with a token: every route and the socket need it, compared in constant time")
    func token() async throws {
        let secret = "0123456789abcdef-secret"
        let (server, dir) = try Self.makeServer(token: secret)
        defer { try? FileManager.default.removeItem(at: dir) }
        try await server.application().test(.live) { client in
            for uri in ["/", "/api/state", "/api/runs", "/ws"] {
                try await client.execute(uri: uri, method: .get) { r in #expect(r.status == .unauthorized, "\(uri)") }
                try await client.execute(uri: uri + "?token=wrong-token-0123456", method: .get) { r in #expect(r.status == .unauthorized) }
            }
            try await client.execute(uri: "/api/state?token=\(secret)", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/api/state", method: .get, headers: [.authorization: "Bearer \(secret)"]) { r in #expect(r.status == .ok) }
        }
        #expect(RequestGuard<BasicRequestContext>.constantTimeEqual("abc", "abc"))
        #expect(!RequestGuard<BasicRequestContext>.constantTimeEqual("abc", "abd"))
        #expect(!RequestGuard<BasicRequestContext>.constantTimeEqual("abc", "abcd"))
    }

    @Test("listening beyond this machine needs a token")
    func listening() throws {
        var c = ServerConfiguration(runsFolder: "/tmp/x", modelPath: "/tmp/m")
        c.host = "0.0.0.0"
        #expect(throws: ServerConfiguration.Invalid.self) { try c.validate() }
        c.token = "short"
        #expect(throws: ServerConfiguration.Invalid.self) { try c.validate() }
        c.token = "a-long-enough-secret-token"
        try c.validate()
        var local = ServerConfiguration(runsFolder: "/tmp/x", modelPath: "/tmp/m")
        local.port = 7860
        #expect(local.allowsHost("127.0.0.1:7860") && local.allowsHost("localhost") && local.allowsHost("[::1]:7860"))
        #expect(!local.allowsHost("127.0.0.1:7861") && !local.allowsHost("evil.example:7860") && !local.allowsHost(nil)
                && !local.allowsHost("localhost.evil.example:7860"))
    }

    @Test("paths never come from the client: only server-made ids, checked after symlinks are resolved")
    func paths() async throws {
        let (server, dir) = try Self.makeServer()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A run folder whose image is a link to a file outside the runs folder.
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-secret-\(UUID().uuidString).png")
        try Data("secret".utf8).write(to: outside)
        defer { try? FileManager.default.removeItem(at: outside) }
        let id = "20260101-000000-001"
        try FileManager.default.createDirectory(at: dir.appendingPathComponent(id), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(id).appendingPathComponent("image.png"), withDestinationURL: outside)
        try await server.application().test(.live) { client in
            for uri in ["/api/runs/\(id)/image.png", "/api/runs/..%2F..%2Fetc/image.png", "/api/runs/../../etc/passwd",
                        "/api/runs/20260101-000000-0001/image.png", "/api/runs/\(id)/steps/-1", "/api/runs/\(id)/maps"] {
                try await client.execute(uri: uri, method: .get) { r in
                    #expect(r.status == .notFound || r.status == .badRequest, "\(uri): \(r.status)")
                    #expect(!String(buffer: r.body).contains("secret"))
                }
            }
        }
        #expect(RunFolders.isValidID("20261205-093000-001"))
        #expect(!RunFolders.isValidID("20261205-093000-01") && !RunFolders.isValidID("../20261205-0930") && !RunFolders.isValidID("2026120५-093000-001"))
    }

    @Test("a run over the socket: queue, steps with s/it and ETA, x̂₀ frames, done; then its trace, image, steps and word maps")
    func liveRun() async throws {
        let (server, dir) = try Self.makeServer()
        defer { try? FileManager.default.removeItem(at: dir) }
        server.startEngine()
        defer { server.stopEngine() }
        try await server.application().test(.live) { client in
            let port = try #require(client.port)
            let events = EventLog()
            // The socket first (as the page opens it), with the page's Host and Origin.
            let ws = try RawWebSocket(port: port, path: "/ws", host: "localhost:\(port)", origin: "http://localhost:\(port)")
            let finished = DispatchSemaphore(value: 0)
            let reader = Thread {
                defer { finished.signal() }
                while let (opcode, payload) = try? ws.read() {
                    if opcode == 1 { events.add(String(decoding: payload, as: UTF8.self)) }
                    if opcode == 2 { events.addFrame(payload) }
                    if opcode == 8 || events.texts.contains(where: { $0.contains(#""type":"done""#) }) { break }
                }
            }
            reader.start()
            // The handshake completes before the server's handler subscribes; post only once it
            // has, or the one-off "start" event can go out to no page (seen once in CI).
            let subscribed = Date().addingTimeInterval(5)
            while server.hub.subscriberCount == 0 && Date() < subscribed { try await Task.sleep(nanoseconds: 5_000_000) }
            let queued = try await client.execute(uri: "/api/runs", method: .post, headers: Self.pageHeaders,
                                                  body: Self.body(#"{"prompt": "a witch and her black cat", "steps": 3, "seed": 7, "sampler": "euler_a", "width": 64, "height": 64}"#)) { r in
                #expect(r.status == .accepted)
                return try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any]
            }
            let id = try #require(queued?["id"] as? String)
            while finished.wait(timeout: .now()) == .timedOut { try await Task.sleep(nanoseconds: 20_000_000) }
            let texts = events.texts
            #expect(texts.contains { $0.contains(#""type":"start""#) && $0.contains(id) })
            let steps = texts.filter { $0.contains(#""type":"step""#) }
            #expect(steps.count == 3, "\(texts)")
            #expect(steps.allSatisfy { $0.contains("seconds_per_step") && $0.contains("eta") })
            #expect(texts.last?.contains(#""status":"done""#) == true)
            let frames = events.frames
            #expect(frames.count == 3)
            for (i, f) in frames.enumerated() {
                let words = stride(from: 0, to: 16, by: 4).map { f[$0..<$0 + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
                #expect(words[0] == 1 && words[2] == UInt32(i + 1) && words[3] == 2)
                #expect(Array(f[16..<24]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "a PNG after the header")
            }
            // What the run left on disk, through the API.
            try await client.execute(uri: "/api/runs/\(id)", method: .get) { r in
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                let trace = try #require(body["trace"] as? [String: Any])
                #expect(trace["steps_completed"] as? Int == 3)
                #expect((body["request"] as? [String: Any])?["status"] as? String == "done")
            }
            try await client.execute(uri: "/api/runs/\(id)/image.png", method: .get) { r in #expect(r.status == .ok && r.headers[.contentType] == "image/png") }
            try await client.execute(uri: "/api/runs/\(id)/steps/2", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/api/runs/\(id)/maps?upto=1", method: .get) { r in
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                let words = try #require(body["words"] as? [String])
                #expect(words.contains("witch") && words.contains("cat"))
                let w = try #require(body["width"] as? Int), h = try #require(body["height"] as? Int)
                let encoded = try #require(body["maps"] as? String)
                let maps = try #require(Data(base64Encoded: encoded))
                #expect(maps.count == words.count * w * h && maps.contains(255))
            }
            try await client.execute(uri: "/api/runs", method: .get) { r in
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                #expect((body["runs"] as? [[String: Any]])?.first?["id"] as? String == id)
            }
            // The merge verdict for two of its words, and the remedy queued as a fork.
            try await client.execute(uri: "/api/runs/\(id)/merge?a=witch&b=cat", method: .get) { r in
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                #expect((body["verdict"] as? String)?.isEmpty == false && (body["iou"] as? [Double])?.count == 3)
            }
            try await client.execute(uri: "/api/runs/\(id)/merge?a=witch", method: .get) { r in #expect(r.status == .badRequest) }
            try await client.execute(uri: "/api/runs", method: .post, headers: Self.pageHeaders,
                                     body: Self.body(#"{"prompt": "a witch and her black cat", "separate": ["witch"]}"#)) { r in
                #expect(r.status == .badRequest && String(buffer: r.body).contains("separate"))
            }
            // The image dropped back on the page: its infotext as the form's fields.
            let png = try #require(FileManager.default.contents(atPath: dir.appendingPathComponent(id).appendingPathComponent("image.png").path))
            let upload = #"{"png_base64": ""# + png.base64EncodedString() + #""}"#
            try await client.execute(uri: "/api/infotext", method: .post, headers: Self.pageHeaders, body: Self.body(upload)) { r in
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                #expect(body["prompt"] as? String == "a witch and her black cat" && body["seed"] as? Int == 7 && body["steps"] as? Int == 3)
                #expect(body["sampler"] as? String == "euler_a")
            }
            try await client.execute(uri: "/api/infotext", method: .post, headers: Self.pageHeaders,
                                     body: Self.body(#"{"png_base64": "iVBORw0KGgoAAAANSUhEUg=="}"#)) { r in
                #expect(r.status == .badRequest, "a truncated PNG is a one-line error")
            }
        }
    }

    @Test("a run that names no sampler, steps or guidance gets the server's defaults, and /api/state gives them to the page's form")
    func runDefaults() async throws {
        for defaults in [ServerConfiguration.RunDefaults.diffusers, .demoModel] {
            let (server, dir) = try Self.makeServer { $0.defaults = defaults }
            defer { try? FileManager.default.removeItem(at: dir) }
            let request = try JSONDecoder().decode(RunRequest.self, from: Data(#"{"prompt": "a red circle"}"#.utf8))
            let s = try server.queue.settings(for: request)
            #expect(s.steps == defaults.steps && s.guidance == defaults.guidance)
            #expect(s.samplerChoice == (defaults == .demoModel ? .diffusers(.ddim) : .diffusers(.euler_a)))
            let named = try JSONDecoder().decode(RunRequest.self, from: Data(#"{"prompt": "a red circle", "sampler": "pndm", "steps": 7, "guidance": 3}"#.utf8))
            let t = try server.queue.settings(for: named)
            #expect(t.steps == 7 && t.guidance == 3 && t.samplerChoice == .diffusers(.pndm), "what the request names wins")
            try await server.application().test(.live) { client in
                try await client.execute(uri: "/api/state", method: .get) { r in
                    let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                    let d = try #require(body["defaults"] as? [String: Any])
                    #expect(d["sampler"] as? String == defaults.sampler && d["steps"] as? Int == defaults.steps
                            && d["guidance"] as? Double == Double(defaults.guidance))
                }
            }
        }
    }

    @Test("the socket upgrade needs the page's Origin")
    func socketOrigin() async throws {
        let (server, dir) = try Self.makeServer()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await server.application().test(.live) { client in
            let port = try #require(client.port)
            for origin in [nil, "null", "http://evil.example", "ws://localhost", "http://localhost:1"] as [String?] {
                #expect(throws: RawWebSocket.Failure.self, "Origin \(origin ?? "absent")") {
                    _ = try RawWebSocket(port: port, path: "/ws", host: "localhost:\(port)", origin: origin)
                }
            }
            // The page's own origin is let in.
            _ = try RawWebSocket(port: port, path: "/ws", host: "localhost:\(port)", origin: "http://localhost:\(port)")
        }
    }

    @Test("cancel: a queued run leaves the queue; a full queue refuses")
    func queue() async throws {
        let (server, dir) = try Self.makeServer { $0.maxQueuedRuns = 2 }
        defer { try? FileManager.default.removeItem(at: dir) }
        // The engine is not started: runs stay queued.
        try await server.application().test(.live) { client in
            var ids: [String] = []
            for n in 0..<2 {
                try await client.execute(uri: "/api/runs", method: .post, headers: Self.pageHeaders, body: Self.body(#"{"prompt": "a cat", "steps": 2}"#)) { r in
                    #expect(r.status == .accepted)
                    let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                    #expect(body["position"] as? Int == n)
                    ids.append(try #require(body["id"] as? String))
                }
            }
            try await client.execute(uri: "/api/runs", method: .post, headers: Self.pageHeaders, body: Self.body(#"{"prompt": "a cat"}"#)) { r in
                #expect(r.status == .badRequest && String(buffer: r.body).contains("queue is full"))
            }
            try await client.execute(uri: "/api/runs/\(ids[0])/cancel", method: .post, headers: Self.pageHeaders, body: Self.body("{}")) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/api/state", method: .get) { r in
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                #expect((body["pending"] as? [[String: Any]])?.map { $0["id"] as? String } == [ids[1]])
            }
            try await client.execute(uri: "/api/runs/\(ids[0])/cancel", method: .post, headers: Self.pageHeaders, body: Self.body("{}")) { r in
                #expect(r.status == .conflict)
            }
        }
    }

    @Test("embeddings: the page picks among the server's triggers, never a file; the run uses and records them")
    func embeddings() async throws {
        let file = Fixtures.path("pipeline/corajr.pt")
        #expect(throws: (any Error).self) { _ = try Self.makeServer { $0.embeddingFiles = [Fixtures.path("tiny-sd/model_index.json")] } }
        #expect(throws: (any Error).self) { _ = try Self.makeServer { $0.embeddingFiles = [file, file] } }  // one trigger twice
        let (server, dir) = try Self.makeServer { $0.embeddingFiles = [file] }
        defer { try? FileManager.default.removeItem(at: dir) }
        server.startEngine()
        defer { server.stopEngine() }
        try await server.application().test(.live) { client in
            let trigger = try await client.execute(uri: "/api/state", method: .get) { r in
                let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                let offered = try #require(body["embeddings"] as? [String])
                #expect(offered.count == 1)
                return try #require(offered.first)
            }
            for (asked, complaint) in [(#"["\#(file)"]"#, "not one this server offers"), (#"["\#(trigger)", "\#(trigger)"]"#, "at most once")] {
                try await client.execute(uri: "/api/runs", method: .post, headers: Self.pageHeaders,
                                         body: Self.body(#"{"prompt": "a cat", "embeddings": \#(asked)}"#)) { r in
                    #expect(r.status == .badRequest && String(buffer: r.body).contains(complaint), "\(String(buffer: r.body))")
                }
            }
            let id = try await client.execute(uri: "/api/runs", method: .post, headers: Self.pageHeaders,
                                              body: Self.body(#"{"prompt": "a photo of \#(trigger)", "steps": 2, "width": 64, "height": 64, "embeddings": ["\#(trigger)"]}"#)) { r in
                #expect(r.status == .accepted)
                return try #require((try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])?["id"] as? String)
            }
            var info: [String: Any] = [:]
            for _ in 0..<600 {
                info = try await client.execute(uri: "/api/runs/\(id)", method: .get) { r in
                    try #require(try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])
                }
                if let status = (info["request"] as? [String: Any])?["status"] as? String, status != "queued", status != "running" { break }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            let request = try #require(info["request"] as? [String: Any])
            #expect(request["status"] as? String == "done", "\(request)")
            #expect(request["embeddings"] as? [String] == [trigger])
            let recorded = try #require((info["trace"] as? [String: Any])?["embeddings"] as? [[String: Any]])
            #expect(recorded.count == 1 && recorded[0]["trigger"] as? String == trigger, "\(recorded)")
        }
    }

    @Test("a page that goes away does not stop the run; a page that comes back is sent its live tail")
    func reconnect() async throws {
        let (server, dir) = try Self.makeServer()
        defer { try? FileManager.default.removeItem(at: dir) }
        server.startEngine()
        defer { server.stopEngine() }
        try await server.application().test(.live) { client in
            let port = try #require(client.port)
            func socket() throws -> RawWebSocket { try RawWebSocket(port: port, path: "/ws", host: "localhost:\(port)", origin: "http://localhost:\(port)") }
            /// The step number of a step event of run `id`, else nil.
            func step(_ message: (opcode: UInt8, payload: [UInt8]), of id: String) -> Int? {
                guard message.opcode == 1,
                      let event = try? JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any],
                      event["type"] as? String == "step", event["id"] as? String == id else { return nil }
                return event["step"] as? Int
            }
            var first: RawWebSocket? = try socket()
            // Long enough to outlast the reconnection (the tiny model at 256², 150 steps: seconds).
            let id = try await client.execute(uri: "/api/runs", method: .post, headers: Self.pageHeaders,
                                              body: Self.body(#"{"prompt": "a witch", "steps": 150, "seed": 3, "width": 256, "height": 256}"#)) { r in
                try #require((try JSONSerialization.jsonObject(with: Data(buffer: r.body)) as? [String: Any])?["id"] as? String)
            }
            var seen: Int?
            while seen == nil { seen = step(try #require(first).read(), of: id) }
            first = nil  // the page goes away without a goodbye (its socket closed)
            try await Task.sleep(nanoseconds: 1_000_000_000)
            let second = try socket()
            // What a page arriving mid-run is sent first: the state, the run's latest step, its latest frame.
            var replayed: [(opcode: UInt8, payload: [UInt8])] = []
            while replayed.count < 6, !(replayed.contains { step($0, of: id) != nil } && replayed.contains { $0.opcode == 2 }) {
                replayed.append(try second.read())
            }
            let replayedStep = try #require(replayed.compactMap { step($0, of: id) }.first)
            #expect(replayedStep > seen!, "the run went on while no page watched")
            #expect(replayed.contains { $0.opcode == 2 }, "the latest frame")
            // And it goes on: later steps arrive on the new page.
            var later: Int?
            while later == nil { later = step(try second.read(), of: id) }
            #expect(later! > replayedStep)
            try await client.execute(uri: "/api/runs/\(id)/cancel", method: .post, headers: Self.pageHeaders, body: Self.body("{}")) { r in
                #expect(r.status == .ok)
            }
            while true {
                let m = try second.read()
                if m.opcode == 1, String(decoding: m.payload, as: UTF8.self).contains(#""type":"done""#) { break }
            }
        }
    }
}

/// What a test's socket received (written by the socket's task, read after it ends).
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var _texts: [String] = [], _frames: [[UInt8]] = []
    func add(_ s: String) { lock.lock(); _texts.append(s); lock.unlock() }
    func addFrame(_ f: [UInt8]) { lock.lock(); _frames.append(f); lock.unlock() }
    var texts: [String] { lock.lock(); defer { lock.unlock() }; return _texts }
    var frames: [[UInt8]] { lock.lock(); defer { lock.unlock() }; return _frames }
}

