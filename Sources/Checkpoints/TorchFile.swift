import Foundation

/// A PyTorch `torch.save` file read without PyTorch: the pickled object tree, with every storage
/// resolved to a byte range of the memory-mapped file.
///
/// Containers: the zip format (torch ≥ 1.6: `<prefix>/data.pkl` plus one stored entry per
/// storage, `<prefix>/data/<key>`), the legacy format (a run of pickles followed by the raw
/// storages), and a plain pickle with no storages at all.
public final class TorchFile: @unchecked Sendable {
    public enum Container: String, Sendable { case zip, legacy, plainPickle }

    public let file: MappedFile
    public let container: Container
    /// The object that was saved (a state dict, a Lightning checkpoint dict, an embedding dict…).
    public let root: PickleValue

    /// Opens a zip archive or a pickle stream (legacy torch or plain), chosen by the first bytes.
    public convenience init(path: String) throws {
        let file = try MappedFile(path: path)
        let b = file.allBytes
        let isZip = b.count >= 4 && b.le32(0) == 0x0403_4B50
        try self.init(file: file, container: isZip ? .zip : .legacy)
    }

    /// `container` `.legacy` also accepts a plain pickle (one that does not start with the
    /// legacy magic number) and reports it as `.plainPickle`.
    init(file: MappedFile, container: Container) throws {
        self.file = file
        switch container {
        case .zip:
            self.container = .zip
            self.root = try TorchFile.readZip(file)
        case .legacy, .plainPickle:
            let (root, legacy) = try TorchFile.readPickleStream(file)
            self.container = legacy ? .legacy : .plainPickle
            self.root = root
        }
    }

    // MARK: zip

    private static func readZip(_ file: MappedFile) throws -> PickleValue {
        let zip = try ZipArchive(file: file)
        // The top folder is the save-time file stem ("archive" by default): take it from data.pkl.
        let pickles = zip.entries.filter { $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") }
        guard let pkl = pickles.min(by: { $0.name.count < $1.name.count }) else {
            throw CheckpointError(file: file.name, "ZIP archive has no data.pkl entry, so it is not a PyTorch checkpoint")
        }
        let prefix = String(pkl.name.dropLast("data.pkl".count))
        var bigEndian = false
        if let order = zip[prefix + "byteorder"] {
            let text = String(decoding: try zip.bytes(of: order), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text == "little" || text == "big" else {
                throw CheckpointError(file: file.name, "byteorder record says \(quoted(text)), expected 'little' or 'big'")
            }
            bigEndian = text == "big"
        }
        var storages: [String: PickleStorage] = [:]
        let load: SafePickle.PersistentLoad = { pid in
            let id = try storageID(pid, file: file.name)
            if let s = storages[id.key] { return .storage(s) }
            guard let entry = zip[prefix + "data/" + id.key] else {
                throw CheckpointError(file: file.name, "storage \(quoted(id.key)) has no entry \(quoted(prefix + "data/" + id.key)) in the archive")
            }
            let r = try zip.dataRange(of: entry)
            let s = PickleStorage(key: id.key, dtype: id.dtype, declaredCount: id.count,
                                  location: StorageLocation(file: file, byteOffset: r.offset, byteCount: r.count, bigEndian: bigEndian))
            storages[id.key] = s
            return .storage(s)
        }
        return try SafePickle.load(try zip.bytes(of: pkl), file: file.name, persistentLoad: load).value
    }

    // MARK: legacy and plain pickles

    /// The little-endian bytes of the legacy magic number 0x1950a86a20f9469cfc6c.
    private static let legacyMagic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]

    private static func readPickleStream(_ file: MappedFile) throws -> (PickleValue, legacy: Bool) {
        let bytes = file.allBytes
        let name = file.name
        let first = try SafePickle.load(bytes, file: name)
        guard case .bigInt(let magic) = first.value, magic == legacyMagic else {
            return (first.value, false)  // a plain pickle: no storages
        }
        let proto = try SafePickle.load(bytes, from: first.end, file: name)
        guard proto.value.intValue == 1001 else {
            throw CheckpointError(file: name, "legacy PyTorch protocol is \(proto.value.kind) \(proto.value.intValue.map(String.init) ?? ""), expected 1001")
        }
        let sysInfo = try SafePickle.load(bytes, from: proto.end, file: name)
        var bigEndian = false
        if case .bool(let little)? = sysInfo.value["little_endian"] { bigEndian = !little }

        var storages: [String: PickleStorage] = [:]
        var views: [(view: PickleStorage, root: String, offset: Int, count: Int)] = []
        let load: SafePickle.PersistentLoad = { pid in
            let id = try storageID(pid, file: name)
            let rootStorage = storages[id.key] ?? PickleStorage(key: id.key, dtype: id.dtype, declaredCount: id.count)
            storages[id.key] = rootStorage
            guard let v = id.view else { return .storage(rootStorage) }
            // Pre-1.0 storage views: a window of another storage, in elements.
            if let s = storages[v.key] { return .storage(s) }
            let s = PickleStorage(key: v.key, dtype: id.dtype, declaredCount: v.count)
            storages[v.key] = s
            views.append((s, id.key, v.offset, v.count))
            return .storage(s)
        }
        let main = try SafePickle.load(bytes, from: sysInfo.end, file: name, persistentLoad: load)
        let keyList = try SafePickle.load(bytes, from: main.end, file: name)
        guard let keyItems = keyList.value.items else {
            throw CheckpointError(file: name, "legacy storage key list is \(keyList.value.kind), expected a list")
        }
        // Then each storage: an 8-byte little-endian element count and the raw elements.
        var pos = keyList.end
        for item in keyItems {
            guard let key = item.keyText else { throw CheckpointError(file: name, "legacy storage key is \(item.kind)") }
            let header = try file.bytes(at: pos, count: 8, what: "element count of storage \(quoted(key))")
            let count = header.le64(0)
            pos += 8
            guard let storage = storages[key] else {
                throw CheckpointError(file: name, "storage \(quoted(key)) is listed but no tensor uses it, so its type is unknown")
            }
            guard count <= UInt64(file.size), case (let n, false) = Int(count).multipliedReportingOverflow(by: storage.dtype.size),
                  file.contains(offset: pos, count: n) else {
                throw CheckpointError(file: name, "storage \(quoted(key)) of \(count) elements runs past the end of the file (\(file.size) bytes; truncated?)")
            }
            storage.location = StorageLocation(file: file, byteOffset: pos, byteCount: n, bigEndian: bigEndian)
            pos += n
        }
        for v in views {
            guard let root = storages[v.root]?.location else { continue }
            let es = v.view.dtype.size
            guard v.offset >= 0, v.count >= 0, case (let end, false) = v.offset.addingReportingOverflow(v.count),
                  case (let endBytes, false) = end.multipliedReportingOverflow(by: es), endBytes <= root.byteCount else {
                throw CheckpointError(file: name, "storage view \(quoted(v.view.key)) lies outside storage \(quoted(v.root))")
            }
            v.view.location = StorageLocation(file: file, byteOffset: root.byteOffset + v.offset * es,
                                              byteCount: v.count * es, bigEndian: bigEndian)
        }
        return (main.value, true)
    }

    // MARK: persistent ids

    /// `('storage', StorageClass, key, location, numel[, view_metadata])`.
    private static func storageID(_ pid: PickleValue, file: String) throws
        -> (dtype: DType, key: String, count: Int?, view: (key: String, offset: Int, count: Int)?) {
        guard let t = pid.items, t.count >= 5, t[0].stringValue == "storage" else {
            throw CheckpointError(file: file, "unsupported persistent id (\(pid.kind)); expected ('storage', type, key, location, size)")
        }
        guard case .global(let cls) = t[1], case .storageType(let dtype)? = SafePickle.allowList[cls] else {
            throw CheckpointError(file: file, "persistent id names \(t[1].kind), not a torch storage class")
        }
        guard let key = t[2].keyText else { throw CheckpointError(file: file, "storage key is \(t[2].kind)") }
        var view: (String, Int, Int)?
        if t.count >= 6, let v = t[5].items {
            guard v.count == 3, let vk = v[0].keyText, let off = v[1].intValue, let n = v[2].intValue else {
                throw CheckpointError(file: file, "storage \(quoted(key)) has malformed view metadata")
            }
            view = (vk, off, n)
        }
        return (dtype, key, t[4].intValue, view)
    }
}
