import Foundation
import Tensors

/// A textual-inversion embedding: the vectors that replace a trigger word's tokens.
///
/// Layouts (as A1111's loader accepts them): A1111 `.pt` (`string_to_param: {"*": [n, 768]}`,
/// plus `name`, `step`…; very old files hold a `ParameterDict`), kohya/A1111 `.safetensors`
/// (`emb_params: [n, 768]`), SDXL (`clip_l` + `clip_g`), and diffusers `learned_embeds.bin`
/// (`{"<token>": [768]}`).
public struct TextualInversionEmbedding: Sendable {
    public enum Layout: String, Sendable { case a1111, kohya, diffusers, sdxl }

    public let layout: Layout
    /// `name` stored in the file, else the file stem (A1111 uses the stem as the trigger word).
    public let name: String
    /// The placeholder token stored in the file (`*`, `<cat-toy>`), if any.
    public let token: String?
    /// Training steps recorded by A1111, if any.
    public let step: Int?
    /// `[n, width]` (or `[width]` for a single diffusers vector); for SDXL, the CLIP-L part.
    public let vectors: TensorEntry
    /// SDXL only: the OpenCLIP-G part.
    public let vectorsG: TensorEntry?

    public var vectorCount: Int { vectors.shape.count == 2 ? vectors.shape[0] : 1 }
    public var width: Int { vectors.shape.last ?? 0 }

    /// The vectors as float32 `[n, width]`.
    public func float32Vectors() throws -> Tensor {
        try vectors.float32().reshaped([vectorCount, width])
    }

    /// Reads the embedding in an opened file; throws if the file is not one.
    public init(_ archive: CheckpointArchive) throws {
        let t = archive.tensors
        let stem = URL(fileURLWithPath: archive.path).deletingPathExtension().lastPathComponent
        name = archive.pickle?["name"]?.stringValue ?? stem
        step = archive.pickle?["step"]?.intValue
        func isVectors(_ e: TensorEntry) -> Bool { e.dtype.isFloatingPoint && (1...2).contains(e.shape.count) && e.elementCount > 0 }

        let a1111 = t.keys.filter { $0.hasPrefix("string_to_param.") }
        if !a1111.isEmpty {
            guard a1111.count == 1, let e = t[a1111[0]], isVectors(e) else {
                throw CheckpointError(file: archive.name, "embedding must hold exactly one vector tensor in string_to_param, found \(a1111.count) entries")
            }
            layout = .a1111
            token = String(a1111[0].dropFirst("string_to_param.".count))
            vectors = e; vectorsG = nil
        } else if let l = t["clip_l"], let g = t["clip_g"], isVectors(l), isVectors(g) {
            layout = .sdxl; token = nil; vectors = l; vectorsG = g
        } else if let e = t["emb_params"], isVectors(e) {
            layout = .kohya; token = nil; vectors = e; vectorsG = nil
        } else if t.count == 1, let (key, e) = t.first, isVectors(e), !key.contains("model."),
                  !key.hasSuffix(".weight"), !key.hasSuffix(".bias") {
            // A lone token tensor; names like `x.weight` are a model's, not a trigger word.
            layout = .diffusers; token = key; vectors = e; vectorsG = nil
        } else {
            throw CheckpointError(file: archive.name, "not a textual-inversion embedding (expected string_to_param, emb_params, clip_l/clip_g, or a single token tensor)")
        }
    }
}
