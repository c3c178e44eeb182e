import Checkpoints
import Foundation
import Tensors

/// Golden files written by Tools/reference/make_fixtures.py, under Tests/Fixtures.
public enum Fixtures {
    public static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    public static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
}

extension SafeTensorsFile {
    /// A tensor of a golden file as float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = tensors[name] else { throw CheckpointError(file: file.name, "has no tensor '\(name)'") }
        return try entry.float32()
    }
}
