import Foundation

/// The runs folder: one sub-folder per run, named by the server (`20261205-093000-001`), holding
/// `image.png`, `trace/` (an ordinary trace: `report`, `merge`, `clip` and `remedy` read it) and
/// `request.json`. A client names a run by its id only; paths are never taken from a request, and
/// every path is checked to lie inside the folder after symbolic links are resolved.
struct RunFolders: Sendable {
    let root: URL
    /// The root after resolving symbolic links (what containment is checked against).
    let resolvedRoot: String

    init(path: String) throws {
        root = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        resolvedRoot = root.resolvingSymlinksInPath().path
    }

    /// Ids the server makes: digits and dashes in a fixed pattern.
    static func isValidID(_ id: String) -> Bool {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 3 && parts.map(\.count) == [8, 6, 3] && parts.allSatisfy { $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }

    /// A new id, unique within the folder.
    func makeID(now: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd-HHmmss"
        let stamp = f.string(from: now)
        for n in 1...999 {
            let id = "\(stamp)-\(String(format: "%03d", n))"
            if !FileManager.default.fileExists(atPath: root.appendingPathComponent(id).path) { return id }
        }
        return "\(stamp)-999"
    }

    func folder(_ id: String) -> URL { root.appendingPathComponent(id, isDirectory: true) }

    /// What a client may read of a run.
    enum Artefact {
        case image, runJSON, request, attention
        case step(Int)

        var relativePath: String {
            switch self {
            case .image: return "image.png"
            case .runJSON: return "trace/run.json"
            case .request: return "request.json"
            case .attention: return "trace/attention.safetensors"
            case let .step(n): return String(format: "trace/steps/%03d.png", n)
            }
        }
    }

    /// The artefact's path when the id is well formed and the file exists inside the root once
    /// symbolic links are resolved; nil otherwise.
    func path(_ id: String, _ artefact: Artefact) -> String? {
        guard Self.isValidID(id) else { return nil }
        let url = folder(id).appendingPathComponent(artefact.relativePath).resolvingSymlinksInPath()
        guard url.path.hasPrefix(resolvedRoot + "/"), FileManager.default.fileExists(atPath: url.path) else { return nil }
        return url.path
    }

    /// The runs on disk, newest first: id, the request as recorded, and whether an image exists.
    func list(limit: Int = 200) -> [[String: Any]] {
        let ids = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).filter(Self.isValidID).sorted(by: >)
        return ids.prefix(limit).compactMap { id in
            guard let p = path(id, .request), let data = FileManager.default.contents(atPath: p),
                  var record = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
            record["id"] = id
            record["has_image"] = path(id, .image) != nil
            return record
        }
    }
}
