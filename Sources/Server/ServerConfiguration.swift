import Foundation

/// How `pareidolia serve` listens and what it allows. Safe by default: loopback only; an address
/// other than loopback needs a token, which then guards every route and the WebSocket upgrade.
public struct ServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 7860
    /// Required on every request when not on loopback (`Authorization: Bearer T`, or `?token=T`,
    /// which the page and its WebSocket use).
    public var token: String?
    /// Where runs are written, one folder per run, addressed by server-made ids only.
    public var runsFolder: String
    /// The model every run uses.
    public var modelPath: String
    /// Textual-inversion files a run may use, by the page's choice of their triggers (the page
    /// names triggers, never files).
    public var embeddingFiles: [String] = []
    /// What a run request leaves out gets these (the page's form starts from them too).
    public var defaults = RunDefaults.diffusers

    // Bounds: a request body, a WebSocket message from the page, the queue, a prompt.
    public var maxBodyBytes = 64 * 1024
    /// A dropped image (for its infotext), base64 in JSON.
    public var maxUploadBytes = 24 * 1024 * 1024
    public var maxSocketMessageBytes = 4 * 1024
    public var maxQueuedRuns = 16
    public var maxPromptCharacters = 4000
    public var maxSide = 1024
    public var maxSteps = 150

    public init(runsFolder: String, modelPath: String) {
        self.runsFolder = runsFolder
        self.modelPath = modelPath
    }

    public struct Invalid: Error, CustomStringConvertible { public let description: String }

    /// Sampler, steps and guidance of a run that names none.
    public struct RunDefaults: Sendable, Equatable {
        public var sampler: String, steps: Int, guidance: Float
        public init(sampler: String, steps: Int, guidance: Float) { (self.sampler, self.steps, self.guidance) = (sampler, steps, guidance) }
        /// What diffusers and A1111 users start from on an SD 1.x model.
        public static let diffusers = RunDefaults(sampler: "euler_a", steps: 20, guidance: 7.5)
        /// The setting the embedded demo model's card measures every figure with.
        public static let demoModel = RunDefaults(sampler: "ddim", steps: 20, guidance: 5)
    }

    /// Loopback addresses need no token; any other needs one of at least 16 characters.
    public func validate() throws {
        guard (0...65535).contains(port) else { throw Invalid(description: "--port \(port): expected 1…65535 (0: any free port)") }
        if !isLoopback {
            guard let token, token.count >= 16 else {
                throw Invalid(description: "--listen \(host): serving beyond this machine needs --token (16 characters or more), which every request must then carry")
            }
        }
        if let token, token.contains(where: { !$0.isASCII || $0.isWhitespace }) {
            throw Invalid(description: "--token: printable ASCII without spaces expected")
        }
    }

    public var isLoopback: Bool { ["127.0.0.1", "localhost", "::1"].contains(host) }

    /// Whether a request's `Host` is ours. On loopback only the loopback names (at our port, or
    /// none given; any port when the port was left to the system, as tests do): a DNS rebinding
    /// attack arrives under another name. Beyond loopback any name the machine is reached by, as
    /// the token guards every request there.
    public func allowsHost(_ value: String?) -> Bool {
        guard let value = value?.lowercased(), !value.isEmpty else { return false }
        if !isLoopback { return true }
        var name = value, port: Int?
        if value.hasPrefix("[") {
            guard let close = value.firstIndex(of: "]") else { return false }
            name = String(value[value.index(after: value.startIndex)..<close])
            let rest = value[value.index(after: close)...]
            if !rest.isEmpty { guard rest.hasPrefix(":"), let p = Int(rest.dropFirst()) else { return false }; port = p }
        } else if let colon = value.lastIndex(of: ":") {
            name = String(value[..<colon])
            guard let p = Int(value[value.index(after: colon)...]) else { return false }
            port = p
        }
        guard ["127.0.0.1", "localhost", "::1"].contains(name) else { return false }
        return port == nil || self.port == 0 || port == self.port
    }
}
