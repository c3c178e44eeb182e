import Checkpoints
import Tensors

/// A `WeightSource` over the tensors of a checkpoint archive, optionally under a prefix and
/// renamed (original single-file keys → diffusers names). Each tensor is read (and converted
/// from 16 bits) once, when a block binds it.
public struct ArchiveWeights: WeightSource {
    public let archive: CheckpointArchive
    /// diffusers-style name → name in the archive.
    let names: [String: String]
    public let label: String

    /// All tensors whose names start with `prefix`, with the prefix removed and `rename` applied
    /// (nil from `rename` leaves the tensor out: it will not be bound).
    public init(_ archive: CheckpointArchive, prefix: String = "", rename: (String) -> String? = { $0 }) {
        self.archive = archive
        self.label = archive.name
        var map: [String: String] = [:]
        for name in archive.names where name.hasPrefix(prefix) {
            if let new = rename(String(name.dropFirst(prefix.count))) { map[new] = name }
        }
        self.names = map
    }

    public var tensorNames: [String] { Array(names.keys) }
    public func shape(of name: String) -> [Int]? { names[name].flatMap { archive.tensors[$0]?.shape } }
    public func float32(_ name: String) throws -> Tensor {
        guard let original = names[name] else { throw WeightLoadError(description: "\(label): no tensor \(name)") }
        return try archive.tensor(original)
    }
    public func half(_ name: String, format: HalfFormat) throws -> HalfTensor {
        guard let original = names[name], let entry = archive[original] else {
            throw WeightLoadError(description: "\(label): no tensor \(name)")
        }
        return try entry.half(format)
    }
}
