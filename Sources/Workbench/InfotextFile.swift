import Diffusion
import Foundation
import Imaging

/// An image's recipe from a file: a PNG's `parameters` text chunk (A1111's or Pareidolia's) or a
/// text file holding the same, read into settings (`Infotext.recipe`).
public enum InfotextFile {
    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public static func recipe(_ path: String) throws -> Infotext.Recipe {
        guard let data = FileManager.default.contents(atPath: path) else { throw Failure(description: "--infotext \(path): cannot be read") }
        return try recipe(data: data, source: "--infotext \(path)")
    }

    /// The recipe in a file's bytes (a PNG, or text); `source` names it in errors.
    public static func recipe(data: Data, source: String) throws -> Infotext.Recipe {
        func fail(_ s: String) -> Failure { Failure(description: "\(source): \(s)") }
        let text: String
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            let chunks: [(key: String, value: String)]
            do { chunks = try PNGFile.readText(data, source: source) } catch { throw Failure(description: "\(error)") }
            guard let p = chunks.first(where: { $0.key == "parameters" })?.value else {
                throw fail("the PNG has no `parameters` text (chunks: \(chunks.isEmpty ? "none" : chunks.map(\.key).joined(separator: ", ")))")
            }
            text = p
        } else {
            guard let t = String(data: data, encoding: .utf8) else { throw fail("neither a PNG nor UTF-8 text") }
            text = t
        }
        do { return try Infotext.recipe(Infotext.parse(text), base: GenerationSettings(prompt: "")) } catch { throw fail("\(error)") }
    }
}

extension Infotext.Recipe {
    /// Everything a run of this recipe should warn about: unused keys, embeddings the image used
    /// that the run lacks (or has as other files), another model.
    public func warnings(for run: GenerationRun) -> [String] {
        var out = warnings
        out += embeddingWarnings(given: zip(run.request.embeddingFiles, run.embeddings).map { spec, e in
            (e.trigger, spec.split(separator: "=", maxSplits: 1).last.map(String.init) ?? spec)
        })
        if let w = modelWarning(modelHash: ModelHash.shortHash(of: run.request.modelPath)) { out.append(w) }
        return out
    }
}
