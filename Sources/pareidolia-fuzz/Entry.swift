import Foundation

// What libFuzzer runs on each input (main.swift hands it to libFuzzer's driver). The reader it
// exercises is named by PAREIDOLIA_FUZZ_TARGET (Tools/fuzz.sh sets it), so one binary serves
// every target.

/// A reader under test: it gets the input's bytes, and may throw (a refusal is the expected
/// answer to most inputs). A crash, a hang or a giant allocation is what libFuzzer reports.
struct FuzzTarget {
    let name: String
    let about: String
    /// Whether the reader tokenizes: then main.swift reads the bundled CLIP vocabulary before
    /// libFuzzer's clock starts (see there); the other targets never load it.
    var usesVocabulary = false
    let run: (UnsafeRawBufferPointer) throws -> Void
}

let fuzzTargets: [FuzzTarget] = checkpointTargets + textTargets + folderTargets

let selectedTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["PAREIDOLIA_FUZZ_TARGET"] ?? ""
    if let t = fuzzTargets.first(where: { $0.name == name }) { return t }
    var err = FileHandle.standardError
    print("PAREIDOLIA_FUZZ_TARGET=\(name.isEmpty ? "(unset)" : name): expected one of", to: &err)
    for t in fuzzTargets { print("  \(t.name.padding(toLength: 12, withPad: " ", startingAt: 0)) \(t.about)", to: &err) }
    exit(2)
}()

public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    do {
        try selectedTarget.run(bytes)
    } catch {
        // Refusals are fine, but they must be one line: messages go to logs and terminals.
        let text = "\(error)"
        if text.contains("\n") || text.contains("\r") {
            fatalError("\(selectedTarget.name): an error message spans lines: \(text.debugDescription)")
        }
    }
    return 0
}

extension FileHandle: @retroactive TextOutputStream {
    public func write(_ string: String) { write(Data(string.utf8)) }
}

// MARK: helpers shared by the targets

/// A folder of this process's own for targets whose readers take paths.
let scratch: String = {
    let base = ProcessInfo.processInfo.environment["PAREIDOLIA_FUZZ_TMP"] ?? NSTemporaryDirectory()
    let dir = URL(fileURLWithPath: base).appendingPathComponent("pareidolia-fuzz-\(getpid())").path
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}()

/// Writes `bytes` to `name` inside the scratch folder (or a subfolder) and returns its path.
@discardableResult
func writeScratch(_ bytes: UnsafeRawBufferPointer, _ name: String, folder: String = "") -> String {
    writeScratch(Data(bytes), name, folder: folder)
}

/// Writes `data` to the scratch folder, then `zeros` zero bytes after it as a hole (the file is
/// extended, nothing written: a synthetic checkpoint's tensors cost no copy).
@discardableResult
func writeScratch(_ data: Data, _ name: String, folder: String = "", zeros: Int = 0) -> String {
    let dir = folder.isEmpty ? scratch : "\(scratch)/\(folder)"
    if !folder.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    let path = "\(dir)/\(name)"
    // Plain write(2): Foundation's createFile writes atomically (a temporary and a rename), which
    // costs more than most readers under test.
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    if fd >= 0 {
        data.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n <= 0 { break }
                done += n
            }
        }
        if zeros > 0 { _ = ftruncate(fd, off_t(data.count + zeros)) }
        close(fd)
    }
    return path
}

func removeScratch(_ name: String) {
    try? FileManager.default.removeItem(atPath: "\(scratch)/\(name)")
}

/// Splits an input into the files of a folder: parts separated by `marker`, the first part the
/// first name's bytes and so on; a missing part leaves its file absent.
func splitParts(_ bytes: UnsafeRawBufferPointer, marker: [UInt8]) -> [UnsafeRawBufferPointer] {
    var parts: [UnsafeRawBufferPointer] = []
    var start = 0, i = 0
    while i + marker.count <= bytes.count {
        if bytes[i] == marker[0], bytes[i..<(i + marker.count)].elementsEqual(marker) {
            parts.append(UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            i += marker.count
            start = i
        } else {
            i += 1
        }
    }
    parts.append(UnsafeRawBufferPointer(rebasing: bytes[start...]))
    return parts
}

/// The input as text the way a command line or a text field would hand it over: invalid UTF-8
/// replaced (Swift strings are always valid Unicode).
func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }
