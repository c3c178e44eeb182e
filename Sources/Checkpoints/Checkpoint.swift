import Foundation
import Tensors

public enum CheckpointFormat: String, Sendable {
    case safetensors
    case pytorchZip
    case pytorchLegacy
    /// A pickle that is not a torch file (holds no tensors).
    case pickle
    case diffusersFolder

    public var displayName: String {
        switch self {
        case .safetensors: return "safetensors"
        case .pytorchZip: return "PyTorch zip"
        case .pytorchLegacy: return "legacy PyTorch"
        case .pickle: return "pickle"
        case .diffusersFolder: return "diffusers folder"
        }
    }
}

/// An opened checkpoint: every tensor under a flat dotted name, plus what else the file holds.
public final class CheckpointArchive: @unchecked Sendable {
    public let path: String
    /// Last path component, for messages.
    public let name: String
    public let format: CheckpointFormat
    public let tensors: [String: TensorEntry]
    /// Tensor names, sorted.
    public let names: [String]
    /// safetensors `__metadata__` (empty for other formats).
    public let metadata: [String: String]
    /// The whole unpickled object for torch files (embeddings keep `name`, `step`… here).
    public let pickle: PickleValue?
    /// diffusers folder: subfolder name → its archive (tensor names there are unprefixed).
    public let components: [String: CheckpointArchive]
    /// The weight files read, relative to `path` for folders.
    public let files: [String]

    init(path: String, format: CheckpointFormat, tensors: [String: TensorEntry], metadata: [String: String] = [:],
         pickle: PickleValue? = nil, components: [String: CheckpointArchive] = [:], files: [String]) {
        self.path = path
        self.name = URL(fileURLWithPath: path).lastPathComponent
        self.format = format
        self.tensors = tensors
        self.names = tensors.keys.sorted()
        self.metadata = metadata
        self.pickle = pickle
        self.components = components
        self.files = files
    }

    public subscript(name: String) -> TensorEntry? { tensors[name] }

    /// The named tensor as float32; throws if it is missing or unreadable.
    public func tensor(_ tensorName: String) throws -> Tensor {
        guard let e = tensors[tensorName] else {
            throw CheckpointError(file: name, "has no tensor \(quoted(tensorName))")
        }
        return try e.float32()
    }

    /// Total bytes of tensor data as stored.
    public var storedBytes: Int { tensors.values.reduce(0) { $0 + $1.byteCount } }
}

public enum Checkpoint {
    static let notACheckpoint = "not a checkpoint (expected .safetensors, a PyTorch zip .pt/.ckpt/.bin, or a legacy PyTorch pickle)"

    /// Opens a checkpoint file or a diffusers folder, recognising the format by content.
    public static func open(_ path: String) throws -> CheckpointArchive {
        var isDir: ObjCBool = false
        let name = URL(fileURLWithPath: path).lastPathComponent
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CheckpointError(file: name, "no such file or folder")
        }
        if isDir.boolValue { return try openFolder(path) }
        return try openFile(try MappedFile(path: path))
    }

    /// The format of a file judged by its first bytes (and, for ambiguous cases, its extension).
    public static func sniff(_ file: MappedFile) -> CheckpointFormat? {
        let b = file.allBytes
        let ext = URL(fileURLWithPath: file.path).pathExtension.lowercased()
        // 8-byte length (< 4 GiB) then '{'. Checked first: a length like 0x80 must not look like PROTO.
        if b.count > 8, b.le64(0) <= UInt64(UInt32.max), b[8] == UInt8(ascii: "{") { return .safetensors }
        if b.count >= 4, b.le32(0) == 0x0403_4B50 || b.le32(0) == 0x0605_4B50 { return .pytorchZip }
        if b.count >= 2, b[0] == 0x80, b[1] <= 5 { return .pytorchLegacy }  // or a plain pickle; decided on reading
        // Trust the extension too, so a damaged header still gets a precise error.
        if ext == "safetensors" { return .safetensors }
        if looksLikeProtocol0Pickle(b, ext: ext) { return .pytorchLegacy }
        return nil
    }

    static func openFile(_ file: MappedFile) throws -> CheckpointArchive {
        switch sniff(file) {
        case .safetensors?:
            let st = try SafeTensorsFile(file: file)
            return CheckpointArchive(path: file.path, format: .safetensors, tensors: st.tensors,
                                     metadata: st.metadata, files: [file.name])
        case .pytorchZip?, .pytorchLegacy?:
            let torch = try TorchFile(file: file, container: sniff(file) == .pytorchZip ? .zip : .legacy)
            let format: CheckpointFormat = torch.container == .zip ? .pytorchZip : torch.container == .legacy ? .pytorchLegacy : .pickle
            return CheckpointArchive(path: file.path, format: format, tensors: try flatten(torch.root, file: file.name),
                                     pickle: torch.root, files: [file.name])
        default:
            throw CheckpointError(file: file.name, notACheckpoint)
        }
    }

    /// Protocol 0/1 pickles have no header; accept the common first opcodes for pickle-ish
    /// extensions, and a `GLOBAL` line (`cmodule\nname\n`) anywhere, so old raw pickles still
    /// reach the safe reader (and its refusal message) instead of "not a checkpoint".
    private static func looksLikeProtocol0Pickle(_ b: UnsafeRawBufferPointer, ext: String) -> Bool {
        guard let first = b.first else { return false }
        if first == UInt8(ascii: "c") {
            // `c` + two identifier lines (module, name) is how every protocol-0 global starts.
            var i = 1, lines = 0, lineStart = 1
            while i < min(b.count, 512), lines < 2 {
                let c = b[i]
                if c == 0x0A {
                    if i == lineStart { break }
                    lines += 1; lineStart = i + 1
                } else if !((c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A) || c == 0x5F || c == 0x2E) {
                    break
                }
                i += 1
            }
            if lines == 2 { return true }
        }
        return ["pkl", "pickle", "pt", "pth", "ckpt", "bin"].contains(ext) && "(}]".utf8.contains(first)
    }

    // MARK: flattening pickles

    /// Tensors of an unpickled object under dotted names. A Lightning checkpoint's `state_dict`
    /// is unwrapped; nested dicts join with '.', lists use indices, old `ParameterDict` objects
    /// contribute their `_parameters`. Each container is walked once (pickles can be cyclic).
    public static func flatten(_ root: PickleValue, file: String) throws -> [String: TensorEntry] {
        var top = root
        if let sd = root["state_dict"], case .dict = sd { top = sd }
        var out: [String: TensorEntry] = [:]
        var seen = Set<ObjectIdentifier>()
        // Weights sit a few levels down; deeper structure is skipped, which also bounds recursion.
        let maxDepth = 64
        func walk(_ v: PickleValue, _ prefix: String, _ depth: Int) throws {
            guard depth <= maxDepth else { return }
            func child(_ key: String) -> String { prefix.isEmpty ? key : "\(prefix).\(key)" }
            switch v {
            case .tensor(let t):
                if out[prefix] == nil { out[prefix] = try t.entry(name: prefix, file: file) }
            case .dict(let d):
                guard seen.insert(ObjectIdentifier(d)).inserted else { return }
                for (k, value) in d.entries {
                    if let key = k.keyText { try walk(value, child(key), depth + 1) }
                }
            case .list(let l), .tuple(let l):
                guard seen.insert(ObjectIdentifier(l)).inserted else { return }
                for (i, value) in l.items.enumerated() { try walk(value, child(String(i)), depth + 1) }
            case .object(let o):
                guard seen.insert(ObjectIdentifier(o)).inserted, let state = o.state else { return }
                try walk(state["_parameters"] ?? state, prefix, depth + 1)
            default:
                break
            }
        }
        try walk(top, "", 0)
        return out
    }

    // MARK: diffusers folders

    /// A diffusers pipeline folder (subfolders unet/, vae/, text_encoder/… with weights) as one
    /// archive with names prefixed by subfolder (`unet/conv_in.weight`). A folder with weight
    /// files directly inside is read as one component with unprefixed names.
    static func openFolder(_ path: String) throws -> CheckpointArchive {
        let fm = FileManager.default
        let name = URL(fileURLWithPath: path).lastPathComponent
        let children: [String]
        do { children = try fm.contentsOfDirectory(atPath: path).sorted() } catch {
            throw CheckpointError(file: name, "cannot list folder (\(error.localizedDescription))")
        }
        var components: [String: CheckpointArchive] = [:]
        for child in children where !child.hasPrefix(".") {
            var isDir: ObjCBool = false
            let sub = "\(path)/\(child)"
            guard fm.fileExists(atPath: sub, isDirectory: &isDir), isDir.boolValue else { continue }
            if let archive = try openComponent(sub) { components[child] = archive }
        }
        if components.isEmpty {
            if let single = try openComponent(path) { return single }
            throw CheckpointError(file: name, "folder holds no model weights (expected model_index.json with unet/, vae/ and text_encoder/ subfolders of .safetensors or .bin files)")
        }
        var tensors: [String: TensorEntry] = [:]
        var files: [String] = []
        for (sub, archive) in components.sorted(by: { $0.key < $1.key }) {
            for (n, e) in archive.tensors { tensors["\(sub)/\(n)"] = e.renamed("\(sub)/\(n)") }
            files += archive.files.map { "\(sub)/\($0)" }
        }
        return CheckpointArchive(path: path, format: .diffusersFolder, tensors: tensors, components: components, files: files)
    }

    /// The weights in one folder, or nil if it has none. Prefers `.safetensors` to `.bin`, and
    /// plain names to variants (`*.fp16.*` next, others last); shards of the chosen kind merge.
    private static func openComponent(_ dir: String) throws -> CheckpointArchive? {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var best: (rank: Int, files: [String])?
        for f in files.sorted() where !f.hasPrefix(".") {
            let url = URL(fileURLWithPath: f)
            let ext = url.pathExtension.lowercased()
            guard ext == "safetensors" || ext == "bin" else { continue }
            let stemParts = url.deletingPathExtension().lastPathComponent.split(separator: ".")
            let variant = stemParts.count > 1 ? String(stemParts.last!) : ""
            let rank = (ext == "safetensors" ? 0 : 3) + (variant.isEmpty ? 0 : variant == "fp16" ? 1 : 2)
            if best == nil || rank < best!.rank { best = (rank, [f]) } else if rank == best!.rank { best!.files.append(f) }
        }
        guard let chosen = best else { return nil }
        let archives = try chosen.files.map { try openFile(try MappedFile(path: "\(dir)/\($0)")) }
        if archives.count == 1 { return archives[0] }
        var tensors: [String: TensorEntry] = [:]
        var metadata: [String: String] = [:]
        for a in archives {
            tensors.merge(a.tensors) { first, _ in first }
            metadata.merge(a.metadata) { first, _ in first }
        }
        return CheckpointArchive(path: dir, format: archives[0].format, tensors: tensors, metadata: metadata, files: chosen.files)
    }
}
