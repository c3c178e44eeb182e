@testable import Checkpoints
import Diffusion
import Foundation
import Models
import Tensors

// Readers of the files people download: checkpoints, torch pickles, embeddings.

let checkpointTargets: [FuzzTarget] = [
    FuzzTarget(name: "safetensors", about: "safetensors header, offsets and tensor reads") { bytes in
        let st = try SafeTensorsFile(file: MappedFile(copying: bytes, name: "fuzz.safetensors"))
        for name in st.names { _ = try? st.tensors[name]?.float32() }
    },
    FuzzTarget(name: "pickle", about: "the safe pickle reader on one pickle, then flattening it") { bytes in
        let file = MappedFile(copying: bytes, name: "fuzz.pkl")
        // Every persistent id is a float storage over the whole input, so tensor views get checked.
        let load: SafePickle.PersistentLoad = { _ in
            .storage(PickleStorage(key: "0", dtype: .f32, declaredCount: nil,
                                   location: StorageLocation(file: file, byteOffset: 0, byteCount: bytes.count / 4 * 4, bigEndian: false)))
        }
        let (root, _) = try SafePickle.load(file.allBytes, file: file.name, persistentLoad: load)
        try readTensors(Checkpoint.flatten(root, file: file.name))
    },
    FuzzTarget(name: "zip", about: "the PyTorch zip archive (.pt, .ckpt, .bin) and its tensors") { bytes in
        let file = MappedFile(copying: bytes, name: "fuzz.pt")
        let zip = try ZipArchive(file: file)
        for entry in zip.entries { _ = try? zip.bytes(of: entry) }
        let torch = try TorchFile(file: file, container: .zip)
        try readTensors(Checkpoint.flatten(torch.root, file: file.name))
    },
    FuzzTarget(name: "legacy", about: "legacy PyTorch .pt (pickles then raw storages) and plain pickles") { bytes in
        let file = MappedFile(copying: bytes, name: "fuzz.pt")
        let torch = try TorchFile(file: file, container: .legacy)
        try readTensors(Checkpoint.flatten(torch.root, file: file.name))
    },
    FuzzTarget(name: "embedding", about: "textual-inversion files: A1111 .pt, diffusers .bin, kohya .safetensors", usesVocabulary: true) { bytes in
        // The first byte picks the extension, which decides how a damaged header is reported.
        guard let first = bytes.first else { return }
        let ext = ["pt", "bin", "safetensors"][Int(first) % 3]
        let path = writeScratch(UnsafeRawBufferPointer(rebasing: bytes.dropFirst()), "trigger.\(ext)")
        let archive = try Checkpoint.open(path)
        _ = ModelDetection(archive)
        _ = try EmbeddingLoader.load("trigger=\(path)", tokenizer: sharedTokenizer, width: nil)
    },
    FuzzTarget(name: "bind", about: "model-kind detection and weight binding of a checkpoint whose shapes lie", usesVocabulary: true) { bytes in
        // The input lists tensors, one per line: `DTYPE NAME DIM DIM …`; the file is built from it
        // with zero data, so the fuzzer can change shapes without also having to fix offsets.
        guard let file = syntheticCheckpoint(bytes) else { return }
        // load opens the file and runs ModelDetection itself (opening it here too cost a fifth)
        _ = try StableDiffusionModel.load(writeScratch(file.header, "model.safetensors", zeros: file.dataBytes), vaeEncoder: false, fast: [])
    },
]

let sharedTokenizer = CLIPTokenizer()

/// Reads every tensor as float32 (conversion, strides, byte order), ignoring refusals of one.
func readTensors(_ tensors: [String: TensorEntry]) throws {
    for (_, e) in tensors { _ = try? e.float32() }
}

/// A safetensors file holding the tensors `spec` lists (`F32 name 320 4 3 3` per line), their
/// bytes zero: the file's length prefix and header, and how many zero data bytes follow them; nil
/// when the list is unreadable or the data would pass 64 MiB. Lines and fields are split on the
/// bytes themselves (a String split and an Int parse per field took a sixth of each run under
/// ASan); a name is read as UTF-8 (invalid bytes become U+FFFD) without `\` and `"`.
func syntheticCheckpoint(_ spec: UnsafeRawBufferPointer) -> (header: Data, dataBytes: Int)? {
    let newline = UInt8(ascii: "\n"), space = UInt8(ascii: " ")
    var header: [UInt8] = [UInt8(ascii: "{")], offset = 0
    header.reserveCapacity(spec.count * 2 + 2)
    func put(_ s: StaticString) { header.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount)) }
    func put(_ n: Int) { header.append(contentsOf: String(n).utf8) }
    for line in spec.split(separator: newline) {
        let f = line.split(separator: space)
        guard f.count >= 2, let dtype = DType(rawValue: String(decoding: f[0], as: UTF8.self)) else { continue }
        var dims: [Int] = []
        for field in f.dropFirst(2) { if let d = decimal(field), d >= 0 { dims.append(d) } }
        guard let count = checkedProduct(dims), case (let bytes, false) = count.multipliedReportingOverflow(by: dtype.size),
              bytes <= 64 << 20 - offset else { return nil }
        if header.count > 1 { put(",") }
        put("\"")
        header.append(contentsOf: String(decoding: f[1], as: UTF8.self).utf8.filter { $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "\"") })
        put("\":{\"dtype\":\""); header.append(contentsOf: dtype.rawValue.utf8); put("\",\"shape\":[")
        for (k, d) in dims.enumerated() { if k > 0 { put(",") }; put(d) }
        put("],\"data_offsets\":["); put(offset); put(","); put(offset + bytes); put("]}")
        offset += bytes
    }
    put("}")
    var out = Data(count: 8)
    out.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(header.count).littleEndian, as: UInt64.self) }
    out.append(contentsOf: header)
    return (out, offset)
}

/// A field as Int parses it: an optional sign and at least one decimal digit, nil on overflow.
private func decimal(_ field: Slice<UnsafeRawBufferPointer>) -> Int? {
    var i = field.startIndex, negative = false
    if i < field.endIndex, field[i] == UInt8(ascii: "+") || field[i] == UInt8(ascii: "-") {
        negative = field[i] == UInt8(ascii: "-")
        i += 1
    }
    guard i < field.endIndex else { return nil }
    var n = 0
    while i < field.endIndex {
        let digit = Int(field[i]) - 48
        guard (0...9).contains(digit) else { return nil }
        let (m, o1) = n.multipliedReportingOverflow(by: 10)
        let (r, o2) = negative ? m.subtractingReportingOverflow(digit) : m.addingReportingOverflow(digit)
        if o1 || o2 { return nil }
        n = r
        i += 1
    }
    return n
}
