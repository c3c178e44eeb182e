import Foundation
import HTTPTypes
import Hummingbird

/// The server's rules, checked before any route (docs/SERVE.md, "Safe by default"):
/// 1. `Host` must be ours (loopback names at our port; DNS rebinding arrives under another name);
/// 2. with a token, every request carries it (`Authorization: Bearer T` or `?token=T`), compared
///    in constant time;
/// 3. a request that changes state (any method but GET/HEAD) and the WebSocket upgrade carry an
///    `Origin` naming this very host — never `null`, never absent (a page elsewhere cannot drive
///    the engine or read the socket);
/// 4. bodies are JSON only, and bounded.
/// Every response carries a Content-Security-Policy of 'self' and no-sniff/no-frame headers.
struct RequestGuard<Context: RequestContext>: RouterMiddleware {
    let configuration: ServerConfiguration
    /// Paths that upgrade to a WebSocket (a GET that needs an Origin all the same).
    let socketPaths: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let refusal = refusal(of: request) {
            var response = Response(status: refusal.status, headers: [.contentType: "text/plain; charset=utf-8"],
                                    body: .init(byteBuffer: ByteBuffer(string: refusal.reason + "\n")))
            Self.secure(&response)
            return response
        }
        var response = try await next(request, context)
        Self.secure(&response)
        return response
    }

    /// Why a request is refused, or nil.
    func refusal(of request: Request) -> (status: HTTPResponse.Status, reason: String)? {
        guard configuration.allowsHost(request.head.authority) else {
            return (.forbidden, "Host \(request.head.authority ?? "(none)") is not this server's")
        }
        if let token = configuration.token {
            let bearer = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
            let given = bearer ?? request.uri.queryParameters["token"].map(String.init)
            guard let given, Self.constantTimeEqual(given, token) else { return (.unauthorized, "a token is required") }
        }
        let changesState = request.method != .get && request.method != .head
        if changesState || socketPaths.contains(request.uri.path) {
            guard let origin = request.headers[.origin], origin != "null",
                  let url = URL(string: origin), let host = url.host, let scheme = url.scheme, scheme == "http" || scheme == "https",
                  let target = request.head.authority?.lowercased(),
                  Self.authority(host: host, port: url.port, scheme: scheme) == target
            else { return (.forbidden, "Origin \(request.headers[.origin] ?? "(none)") does not match this server") }
        }
        if changesState {
            guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/json") else {
                return (.unsupportedMediaType, "JSON bodies only (Content-Type: application/json)")
            }
        }
        return nil
    }

    /// `host[:port]` as a browser writes it in Host for this origin (default ports omitted).
    static func authority(host: String, port: Int?, scheme: String) -> String {
        let h = host.contains(":") ? "[\(host)]" : host
        let defaultPort = scheme == "https" ? 443 : 80
        guard let port, port != defaultPort else { return h.lowercased() }
        return "\(h):\(port)".lowercased()
    }

    /// Equal strings, in time that depends only on their lengths.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) {
            diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return diff == 0
    }

    static func secure(_ response: inout Response) {
        response.headers[.contentSecurityPolicy] = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
    }
}
