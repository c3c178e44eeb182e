import ArgumentParser
import Checkpoints
import Foundation

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the tensors of a checkpoint and say what model it looks like.",
        discussion: """
        PATH is a .safetensors, .pt, .ckpt or .bin file, or a diffusers folder. PyTorch files are read \
        by a safe reader that refuses anything but tensors and plain containers; nothing is executed.
        """)

    @Argument(help: "A checkpoint file or a diffusers folder.")
    var path: String

    @Option(name: .long, help: "Only list tensors whose name contains this text.")
    var filter: String?

    @Flag(name: .long, help: "Print only the summary, not every tensor.")
    var summary = false

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let archive: CheckpointArchive
        do { archive = try Checkpoint.open(path) } catch { throw CLIError("\(error)") }
        let detection = ModelDetection(archive)
        let names = archive.names.filter { filter == nil || $0.contains(filter!) }
        let parameters = archive.tensors.values.reduce(0) { $0 + $1.elementCount }
        var bytesByType: [String: Int] = [:]
        for e in archive.tensors.values { bytesByType[e.dtype.rawValue, default: 0] += e.byteCount }

        if json {
            var object: [String: Any] = [
                "path": path, "format": archive.format.rawValue, "kind": detection.kind.rawValue,
                "description": detection.summary, "tensor_count": archive.tensors.count,
                "parameters": parameters, "bytes_by_dtype": bytesByType,
            ]
            if !summary {
                object["tensors"] = names.map { n -> [String: Any] in
                    let e = archive.tensors[n]!
                    return ["name": n, "dtype": e.dtype.rawValue, "shape": e.shape, "parameters": e.elementCount]
                }
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }

        print("\(path): \(archive.format.displayName) — \(detection.summary)")
        if !summary && !names.isEmpty {
            let shapes = names.map { "[" + archive.tensors[$0]!.shape.map(String.init).joined(separator: ", ") + "]" }
            let nameWidth = min(names.map(\.count).max() ?? 4, 90), shapeWidth = shapes.map(\.count).max() ?? 5
            print(pad("name", nameWidth) + "  dtype  " + pad("shape", shapeWidth) + "  parameters")
            for (n, shape) in zip(names, shapes) {
                let e = archive.tensors[n]!
                print(pad(n, nameWidth) + "  " + pad(e.dtype.rawValue, 5) + "  " + pad(shape, shapeWidth) + "  "
                      + grouped(e.elementCount))
            }
        }
        let listed = filter == nil ? "" : " (\(names.count) match '\(filter!)')"
        let storage = bytesByType.sorted { $0.key < $1.key }.map { "\($0.key) \(megabytes($0.value))" }.joined(separator: ", ")
        print("\(archive.tensors.count) tensors\(listed), \(grouped(parameters)) parameters (\(String(format: "%.2f", Double(parameters) / 1e6)) M); stored: \(storage.isEmpty ? "nothing" : storage)")
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    private func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(d)
        }
        return out
    }

    private func megabytes(_ bytes: Int) -> String {
        bytes >= 1_000_000 ? String(format: "%.1f MB", Double(bytes) / 1e6) : String(format: "%.1f kB", Double(bytes) / 1e3)
    }
}
