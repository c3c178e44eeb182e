import Foundation

/// A problem with a checkpoint file's contents or with reading/writing it.
///
/// `description` is always one line: `<file name>: <what was expected>`. Names and values taken
/// from the file are escaped so a hostile file cannot forge extra lines in a log.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    /// The file's last path component (or a folder/entry name).
    public let file: String
    public let message: String

    public init(file: String, _ message: String) {
        self.file = file
        self.message = message
    }

    public var description: String { CheckpointError.oneLine("\(file): \(message)") }

    /// Escapes control characters so the text stays on one line.
    public static func oneLine(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
                    || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

extension CheckpointError: LocalizedError {
    public var errorDescription: String? { description }
}

/// Quotes a name from a file for an error message, shortening very long ones.
func quoted(_ s: String) -> String {
    let limit = 200
    if s.count <= limit { return "'\(s)'" }
    return "'\(s.prefix(limit))…'"
}
