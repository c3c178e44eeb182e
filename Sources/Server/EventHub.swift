import Foundation

/// What the server pushes over the WebSocket: JSON control events, and binary preview frames
/// (ComfyUI's framing: big-endian u32 kind · u32 run number · u32 step · u32 format, then the image).
public enum ServerEvent: Sendable {
    case text(String)
    case binary([UInt8])

    static func json(_ object: [String: Any]) -> ServerEvent {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return .text(String(decoding: data, as: UTF8.self))
    }

    static let previewKind: UInt32 = 1
    static let pngFormat: UInt32 = 2

    static func preview(run: Int, step: Int, png: Data) -> ServerEvent {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16 + png.count)
        for v in [previewKind, UInt32(run), UInt32(step), pngFormat] { withUnsafeBytes(of: v.bigEndian) { bytes += $0 } }
        bytes += png
        return .binary(bytes)
    }
}

/// Fans events out to every connected page. Each subscriber has a bounded buffer that keeps the
/// newest events: a slow page gets the latest frame, not a backlog, and never grows our memory.
/// The latest state (queue, the running run's last step and frame) is replayed to a new
/// subscriber, so a page that reconnects sees the live tail.
public final class EventHub: @unchecked Sendable {
    private let lock = NSLock()
    private var subscribers: [UUID: AsyncStream<ServerEvent>.Continuation] = [:]
    private var replay: [String: ServerEvent] = [:]
    private let buffer: Int

    public init(buffer: Int = 32) { self.buffer = buffer }

    /// `replayKey`: the event replaces the last one with the same key in what a new page is sent
    /// first ("queue", "step", "frame"); nil for one-off events.
    func publish(_ event: ServerEvent, replayKey: String? = nil) {
        lock.lock()
        if let replayKey { replay[replayKey] = event }
        let targets = Array(subscribers.values)
        lock.unlock()
        for c in targets { c.yield(event) }
    }

    /// Forgets the replayed events of a run that ended (its step and frame).
    func clearReplay(_ keys: [String]) {
        lock.lock()
        for k in keys { replay[k] = nil }
        lock.unlock()
    }

    /// A page's stream of events (the replayed state first); `unsubscribe` ends it.
    public func subscribe() -> (UUID, AsyncStream<ServerEvent>) {
        let id = UUID()
        let (stream, continuation) = AsyncStream<ServerEvent>.makeStream(bufferingPolicy: .bufferingNewest(buffer))
        lock.lock()
        subscribers[id] = continuation
        for key in ["queue", "step", "frame"] { if let e = replay[key] { continuation.yield(e) } }
        lock.unlock()
        return (id, stream)
    }

    public func unsubscribe(_ id: UUID) {
        lock.lock()
        let c = subscribers.removeValue(forKey: id)
        lock.unlock()
        c?.finish()
    }

    var subscriberCount: Int { lock.lock(); defer { lock.unlock() }; return subscribers.count }
}
