import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket client as small as a test needs, on a blocking POSIX socket: it sends the upgrade
/// with exactly the headers a browser page would (Host with the port, the page's Origin), which
/// the library client cannot (it writes an Origin of its own), and reads the server's unmasked
/// frames. Runs on a thread of its own so it never blocks the server's tasks.
final class RawWebSocket {
    private let fd: Int32

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Connects to 127.0.0.1:port and upgrades `path`; throws with the status line when refused.
    init(port: Int, path: String, host: String, origin: String?) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw Failure(description: "connect() failed") }
        var request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        if let origin { request += "Origin: \(origin)\r\n" }
        request += "\r\n"
        _ = request.utf8CString.withUnsafeBufferPointer { send(fd, $0.baseAddress, $0.count - 1, 0) }
        // The response head, byte by byte up to the blank line (frames may follow at once).
        var head = [UInt8]()
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
            guard let b = try readExactly(1).first else { break }
            head.append(b)
        }
        let status = String(decoding: head, as: UTF8.self).split(separator: "\r\n").first.map(String.init) ?? ""
        guard status.contains(" 101 ") else { close(fd); throw Failure(description: "upgrade refused: \(status)") }
    }

    deinit { close(fd) }

    private func readExactly(_ n: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        var got = 0
        while got < n {
            let r = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, n - got, 0) }
            guard r > 0 else { throw Failure(description: "connection closed or timed out") }
            got += r
        }
        return out
    }

    /// The next message: (opcode, payload) — 1 text, 2 binary, 8 close.
    func read() throws -> (opcode: UInt8, payload: [UInt8]) {
        let h = try readExactly(2)
        var length = Int(h[1] & 0x7F)
        if length == 126 { length = try readExactly(2).reduce(0) { $0 << 8 | Int($1) } }
        else if length == 127 { length = try readExactly(8).reduce(0) { $0 << 8 | Int($1) } }
        return (h[0] & 0x0F, try readExactly(length))
    }
}
