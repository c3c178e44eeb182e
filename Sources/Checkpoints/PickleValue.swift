/// A value rebuilt by `SafePickle`. Only plain data appears here: nothing from the file is ever
/// run. Lists, dicts and objects are classes because pickles share and mutate them by reference
/// (a dict is memoised while empty, then filled).
public enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    /// An integer too wide for `Int`: little-endian two's complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(PickleList)
    case list(PickleList)
    case dict(PickleDict)
    case set(PickleList)
    /// An allow-listed class or function used as a value, as "module.name".
    case global(String)
    /// An instance of an allow-listed, data-only class we never construct (a numpy scalar, a
    /// Lightning callback, an old `ParameterDict`): its type name, arguments and state.
    case object(PickleObject)
    case storage(PickleStorage)
    case tensor(PickledTensor)

    /// Dict lookup by string key; for objects, looks in their state dict.
    public subscript(key: String) -> PickleValue? {
        switch self {
        case .dict(let d): return d[key]
        case .object(let o): return o.state?[key]
        default: return nil
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
    var tupleItems: [PickleValue]? { if case .tuple(let t) = self { return t.items }; return nil }
    public var dictValue: PickleDict? { if case .dict(let d) = self { return d }; return nil }
    public var tensorValue: PickledTensor? { if case .tensor(let t) = self { return t }; return nil }
    /// Items of a list, tuple or set.
    public var items: [PickleValue]? {
        switch self {
        case .tuple(let l), .list(let l), .set(let l): return l.items
        default: return nil
        }
    }

    /// A short description of the kind of value, for messages.
    public var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int, .bigInt: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .set: return "set"
        case .global(let g): return "global \(g)"
        case .object(let o): return "\(o.type) object"
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }

    /// Text for a dict key when flattening names ("0" for int keys).
    var keyText: String? {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return b ? "True" : "False"
        case .bytes(let b): return String(decoding: b, as: UTF8.self)
        case .global(let g): return g
        default: return nil
        }
    }

    var hashKey: PickleDict.Key? {
        switch self {
        case .string(let s): return .string(s)
        case .int(let i): return .int(i)
        case .bool(let b): return .int(b ? 1 : 0)  // Python: True == 1 as a key
        case .bytes(let b): return .bytes(b)
        case .bigInt(let b): return .bytes([0xFF] + b)
        case .none: return .null
        case .global(let g): return .global(g)
        default: return nil
        }
    }
}

/// Items of a list, tuple or set.
public final class PickleList {
    public internal(set) var items: [PickleValue]
    init(_ items: [PickleValue] = []) { self.items = items }
    deinit { PickleTeardown.drain(&items) }
}

/// An insertion-ordered dict (pickled dicts keep their order; state dicts rely on it).
public final class PickleDict {
    enum Key: Hashable { case string(String), int(Int), bytes([UInt8]), null, global(String) }

    public private(set) var keys: [PickleValue] = []
    public private(set) var values: [PickleValue] = []
    private var index: [Key: Int] = [:]

    init() {}
    deinit { PickleTeardown.drain(&keys); PickleTeardown.drain(&values) }

    public var count: Int { keys.count }
    public var entries: Zip2Sequence<[PickleValue], [PickleValue]> { zip(keys, values) }

    public subscript(key: String) -> PickleValue? { index[.string(key)].map { values[$0] } }
    public subscript(key: Int) -> PickleValue? { index[.int(key)].map { values[$0] } }

    /// Empties the dict, handing back its keys and values (for iterative teardown).
    func takeAll() -> [PickleValue] {
        defer { keys = []; values = []; index = [:] }
        return keys + values
    }

    /// Sets a key, replacing an equal existing key's value in place (as Python does).
    func set(_ key: PickleValue, _ value: PickleValue) {
        if let h = key.hashKey {
            if let i = index[h] { values[i] = value; return }
            index[h] = keys.count
        }
        keys.append(key)
        values.append(value)
    }
}

public final class PickleObject {
    /// "module.name" of its class.
    public let type: String
    public internal(set) var args: [PickleValue]
    public internal(set) var state: PickleValue?
    init(type: String, args: [PickleValue]) { self.type = type; self.args = args }
    deinit {
        var rest = args + (state.map { [$0] } ?? [])
        args = []
        state = nil
        PickleTeardown.drain(&rest)
    }
}

/// Frees nested containers with a work list instead of recursive deinits, so a hostile pickle
/// nesting lists a million deep cannot overflow the stack when it is released. Only containers
/// nobody else holds are emptied; shared ones are left intact for their other owners.
enum PickleTeardown {
    static func drain(_ items: inout [PickleValue]) {
        guard items.contains(where: \.isContainer) else { return }
        var work = items
        items = []
        while !work.isEmpty {
            var v = work.removeLast()
            switch v {
            case .list(var l), .tuple(var l), .set(var l):
                v = .none
                if isKnownUniquelyReferenced(&l) { work.append(contentsOf: l.items); l.items = [] }
            case .dict(var d):
                v = .none
                if isKnownUniquelyReferenced(&d) { work.append(contentsOf: d.takeAll()) }
            case .object(var o):
                v = .none
                if isKnownUniquelyReferenced(&o) { work.append(contentsOf: o.args); o.args = []; if let s = o.state { work.append(s); o.state = nil } }
            default:
                break
            }
        }
    }
}

extension PickleValue {
    var isContainer: Bool {
        switch self {
        case .list, .tuple, .set, .dict, .object: return true
        default: return false
        }
    }
}

/// A torch storage named by a persistent id. Its bytes are found by the container (a zip entry,
/// or a section after the pickles in the legacy format), possibly after the pickle is read.
public final class PickleStorage {
    public let key: String
    public let dtype: DType
    /// Element count declared in the persistent id, when given.
    public let declaredCount: Int?
    public internal(set) var location: StorageLocation?
    init(key: String, dtype: DType, declaredCount: Int?, location: StorageLocation? = nil) {
        self.key = key; self.dtype = dtype; self.declaredCount = declaredCount; self.location = location
    }
}

/// A tensor rebuilt from `_rebuild_tensor_v2`: a strided view into a storage.
public struct PickledTensor {
    public let storage: PickleStorage
    public let storageOffset: Int
    public let shape: [Int]
    public let strides: [Int]

    /// The tensor as an entry named `name`, bounds-checked against its storage.
    public func entry(name: String, file: String) throws -> TensorEntry {
        guard let loc = storage.location else {
            throw CheckpointError(file: file, "tensor \(quoted(name)) uses storage \(quoted(storage.key)), which is missing from the file")
        }
        return try TensorEntry(name: name, dtype: storage.dtype, shape: shape, strides: strides,
                               storageOffset: storageOffset, storage: loc)
    }
}
