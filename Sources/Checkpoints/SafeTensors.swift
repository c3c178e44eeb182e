/// A `.safetensors` file, memory-mapped and fully validated on open; tensor bytes are read only
/// when asked for.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then the
/// data buffer, to which the offsets are relative.
public final class SafeTensorsFile: @unchecked Sendable {
    /// The reference reader's limit on the header size.
    public static let maxHeaderLength = 100_000_000

    public let file: MappedFile
    public let metadata: [String: String]
    public let tensors: [String: TensorEntry]
    /// Tensor names in data (offset) order.
    public let names: [String]
    /// Absolute offset of the data buffer (8 + header length).
    public let dataOffset: Int

    public convenience init(path: String) throws {
        try self.init(file: try MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let name = file.name
        func fail(_ m: String) -> CheckpointError { CheckpointError(file: name, m) }

        guard file.size >= 8 else {
            throw fail("file is \(file.size) bytes, too short for a safetensors header (at least 8)")
        }
        let all = file.allBytes
        let n = all.le64(0)
        guard n <= UInt64(SafeTensorsFile.maxHeaderLength) else {
            throw fail("header length \(n) exceeds the safetensors limit of \(SafeTensorsFile.maxHeaderLength) bytes")
        }
        guard n <= UInt64(file.size - 8) else {
            throw fail("header length \(n) exceeds file size \(file.size)")
        }
        let headerLength = Int(n)
        dataOffset = 8 + headerLength
        let dataSize = file.size - dataOffset

        let json: JSONValue
        do {
            json = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: all[8..<dataOffset]))
        } catch let e as JSONParseError {
            throw fail("header is not valid JSON (\(e.message))")
        }
        guard case .object(let members) = json else {
            throw fail("header is \(json.kind), expected a JSON object")
        }

        var metadata: [String: String] = [:]
        var tensors: [String: TensorEntry] = [:]
        var ranges: [(begin: Int, end: Int, name: String)] = []
        var sawMetadata = false
        for (key, value) in members {
            if key == "__metadata__" {
                guard !sawMetadata else { throw fail("__metadata__ appears twice") }
                sawMetadata = true
                if case .null = value { continue }  // the reference reader accepts null
                guard case .object(let pairs) = value else {
                    throw fail("__metadata__ is \(value.kind), expected a map of strings to strings")
                }
                for (k, v) in pairs {
                    guard case .string(let s) = v else {
                        throw fail("__metadata__ value for \(quoted(k)) is \(v.kind), expected a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard tensors[key] == nil else { throw fail("tensor \(quoted(key)) appears twice in the header") }
            let t = try SafeTensorsFile.entry(key, value, dataSize: dataSize, fail: fail)
            tensors[key] = TensorEntry(name: key, dtype: t.dtype, shape: t.shape, file: file,
                                       byteOffset: dataOffset + t.begin)
            ranges.append((t.begin, t.end, key))
        }

        // Tensors may leave gaps (we are lenient there) but must never share bytes.
        ranges.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var previous: (begin: Int, end: Int, name: String)?
        for r in ranges where r.end > r.begin {
            if let p = previous, r.begin < p.end {
                throw fail("tensors \(quoted(p.name)) (bytes \(p.begin)..<\(p.end)) and \(quoted(r.name)) (bytes \(r.begin)..<\(r.end)) overlap")
            }
            previous = r
        }
        self.metadata = metadata
        self.tensors = tensors
        self.names = ranges.map(\.name)
    }

    public subscript(name: String) -> TensorEntry? { tensors[name] }

    /// Checks one header entry; returns its dtype, shape and byte range within the data buffer.
    private static func entry(_ name: String, _ value: JSONValue, dataSize: Int,
                              fail: (String) -> CheckpointError) throws -> (dtype: DType, shape: [Int], begin: Int, end: Int) {
        let q = quoted(name)
        guard case .object(let fields) = value else {
            throw fail("tensor \(q) is \(value.kind), expected an object with dtype, shape and data_offsets")
        }
        var dtypeV: JSONValue?, shapeV: JSONValue?, offsetsV: JSONValue?
        for (k, v) in fields {
            switch k {
            case "dtype": dtypeV = v
            case "shape": shapeV = v
            case "data_offsets": offsetsV = v
            default: break  // unknown fields are ignored, as the reference reader does
            }
        }
        guard case .string(let dtypeName)? = dtypeV else { throw fail("tensor \(q) has no dtype string") }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw fail("tensor \(q) has unsupported dtype \(quoted(dtypeName)) (expected one of \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard case .array(let dims)? = shapeV else { throw fail("tensor \(q) has no shape list") }
        let shape = dims.compactMap(\.nonNegativeInt)
        guard shape.count == dims.count else {
            throw fail("tensor \(q) has shape [\(dims.map(describe).joined(separator: ", "))] (expected non-negative integers)")
        }
        guard case .array(let offs)? = offsetsV, offs.count == 2,
              let begin = offs[0].nonNegativeInt, let end = offs[1].nonNegativeInt else {
            throw fail("tensor \(q) needs data_offsets [begin, end] with non-negative integers")
        }
        guard begin <= end else { throw fail("tensor \(q) has data_offsets [\(begin), \(end)] with begin after end") }
        guard end <= dataSize else {
            throw fail("tensor \(q) has data_offsets [\(begin), \(end)] past the end of the data (\(dataSize) bytes; truncated?)")
        }
        guard let count = checkedProduct(shape), case (let bytes, false) = count.multipliedReportingOverflow(by: dtype.size) else {
            throw fail("tensor \(q) has shape \(shape), too large")
        }
        guard end - begin == bytes else {
            throw fail("tensor \(q) holds \(end - begin) bytes but \(dtype) \(shape) needs \(bytes)")
        }
        return (dtype, shape, begin, end)
    }
}

private func describe(_ v: JSONValue) -> String {
    switch v {
    case .number(let t): return t
    case .string(let s): return "\"\(s)\""
    default: return v.kind
    }
}
