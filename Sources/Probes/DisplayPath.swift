import Foundation

/// A path as a person would type it here: relative to the working directory where it lies under
/// it, as it is otherwise. Pages and terminal lines show the command or file, not this machine's
/// layout (the libraries work on standardized absolute paths).
public enum DisplayPath {
    public static func of(_ path: String, workingDirectory: String = FileManager.default.currentDirectoryPath) -> String {
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        let base = URL(fileURLWithPath: workingDirectory).standardizedFileURL.path
        if absolute == base { return "." }
        let prefix = base.hasSuffix("/") ? base : base + "/"
        return absolute.hasPrefix(prefix) ? String(absolute.dropFirst(prefix.count)) : path
    }
}
