import CAssets
import Foundation

/// Where the default model lives: the miniature SD 1.x trained on the Shapes world
/// (Tools/toyworld, `Assets/demo-model/`), with its CLIP (`demo-clip/`) and textual-inversion
/// characters (`demo-embeddings/`).
///
/// Looked up, first match wins: `$PAREIDOLIA_ASSETS`; an installed copy beside the binary
/// (`BIN/../share/pareidolia/`, as `Tools/install.sh` lays it out); the package's `Assets/` the
/// binary was built from (so `swift run` and a copied binary on the build machine both find it).
public enum DefaultModel {
    public static let modelFolder = "demo-model"
    public static let clipFolder = "demo-clip"
    public static let embeddingsFolder = "demo-embeddings"

    /// Candidate asset folders, in lookup order, each with where it came from.
    public static func candidates(environment: [String: String] = ProcessInfo.processInfo.environment,
                                  executable: URL? = Bundle.main.executableURL) -> [(path: String, origin: String)] {
        var list: [(String, String)] = []
        if let env = environment["PAREIDOLIA_ASSETS"], !env.isEmpty { list.append((env, "$PAREIDOLIA_ASSETS")) }
        if let exe = executable?.resolvingSymlinksInPath() {
            let share = exe.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("share/pareidolia").path
            list.append((share, "installed beside the binary"))
        }
        list.append((String(cString: pd_assets_dir()), "the package's Assets/ at build time"))
        return list
    }

    /// The asset folder holding `demo-model/`, or an error naming every place looked at.
    public static func assetsDirectory(environment: [String: String] = ProcessInfo.processInfo.environment,
                                       executable: URL? = Bundle.main.executableURL) throws -> String {
        let places = candidates(environment: environment, executable: executable)
        for (dir, _) in places where isModelFolder(dir + "/" + modelFolder) { return dir }
        let looked = places.map { "\($0.path)/\(modelFolder) (\($0.origin))" }.joined(separator: ", ")
        throw WeightLoadError(description: "no --model given and the default model was not found; looked in \(looked). Pass --model PATH, or set PAREIDOLIA_ASSETS to a folder holding \(modelFolder)/")
    }

    /// The default SD 1.x diffusers folder.
    public static func modelPath() throws -> String { try assetsDirectory() + "/" + modelFolder }

    /// Whether `path` names the default model's folder (however spelled: relative, with `..`, through
    /// a link), so a command given it explicitly can use what belongs to it (its run defaults).
    public static func isDefaultModel(_ path: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                                      executable: URL? = Bundle.main.executableURL) -> Bool {
        guard let dir = try? assetsDirectory(environment: environment, executable: executable) else { return false }
        func canonical(_ p: String) -> String { URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path }
        return canonical(path) == canonical(dir + "/" + modelFolder)
    }

    /// The default CLIP model (`CLIPModel` layout) that belongs to the default SD model.
    public static func clipPath() throws -> String { try assetsDirectory() + "/" + clipFolder }

    /// The default model's textual-inversion files, by trigger name (`alex` → `…/alex.pt`).
    public static func embeddings() throws -> [String: String] {
        let dir = try assetsDirectory() + "/" + embeddingsFolder
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var out: [String: String] = [:]
        for f in files where f.hasSuffix(".pt") || f.hasSuffix(".safetensors") {
            out[URL(fileURLWithPath: f).deletingPathExtension().lastPathComponent] = dir + "/" + f
        }
        return out
    }

    static func isModelFolder(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path + "/model_index.json")
            || FileManager.default.fileExists(atPath: path + "/unet/config.json")
    }
}
