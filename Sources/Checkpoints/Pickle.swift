/// A pickle reader that never executes anything.
///
/// Python's unpickler imports and calls whatever the file names. This one only recognises an
/// allow-list of globals and *interprets* them, building plain `PickleValue`s: tensors, dicts,
/// lists, numbers, strings. Any other global is refused the moment it is named, so a hostile
/// file fails before anything could happen.
public enum SafePickle {
    /// Resolves a persistent id (torch: `('storage', StorageClass, key, location, numel)`).
    public typealias PersistentLoad = (PickleValue) throws -> PickleValue

    /// Reads one pickle starting at `offset`; returns its value and the offset just past STOP.
    /// `file` names the source in errors.
    public static func load(_ bytes: UnsafeRawBufferPointer, from offset: Int = 0, file: String,
                            persistentLoad: PersistentLoad? = nil) throws -> (value: PickleValue, end: Int) {
        var vm = PickleMachine(bytes: bytes, pos: offset, file: file, persistentLoad: persistentLoad)
        let v = try vm.run()
        return (v, vm.pos)
    }

    /// What an allowed global is for.
    enum Role {
        case orderedDict
        case rebuildTensor  // torch._utils._rebuild_tensor(_v2)
        case rebuildParameter  // args[0] is the tensor
        case rebuildFromType  // torch._tensor._rebuild_from_type_v2(func, type, args, state)
        case storageType(DType)
        case codecsEncode  // protocol-2 bytes: _codecs.encode(str, 'latin1')
        case inert  // data-only: kept as an opaque PickleObject, never interpreted further
    }

    /// Everything a pickle may name. Inert entries are classes that real SD checkpoints and
    /// embeddings contain (Lightning callbacks, numpy scalars in training state, old A1111
    /// ParameterDicts); they become opaque objects, so allowing them runs no code either.
    static let allowList: [String: Role] = {
        var m: [String: Role] = [
            "collections.OrderedDict": .orderedDict,
            "torch._utils._rebuild_tensor_v2": .rebuildTensor,
            "torch._utils._rebuild_tensor": .rebuildTensor,
            "torch._utils._rebuild_parameter": .rebuildParameter,
            "torch._utils._rebuild_parameter_with_state": .rebuildParameter,
            "torch._tensor._rebuild_from_type_v2": .rebuildFromType,
            "_codecs.encode": .codecsEncode,
        ]
        for s in ["Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char", "Byte", "Bool", "Untyped"] {
            m["torch.\(s)Storage"] = .storageType(DType(torchStorage: "\(s)Storage")!)
        }
        for inert in [
            "torch.Tensor", "torch.nn.parameter.Parameter", "torch.nn.modules.container.ParameterDict",
            "torch.float32", "torch.float16", "torch.bfloat16", "torch.float64", "torch.int64", "torch.int32",
            "torch.int8", "torch.uint8", "torch.bool",
            "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
            "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
            "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
            "pytorch_lightning.callbacks.model_checkpoint",
            "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint",
        ] { m[inert] = .inert }
        return m
    }()
}

struct PickleMachine {
    let bytes: UnsafeRawBufferPointer
    var pos: Int
    let file: String
    let persistentLoad: SafePickle.PersistentLoad?

    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    init(bytes: UnsafeRawBufferPointer, pos: Int, file: String, persistentLoad: SafePickle.PersistentLoad?) {
        self.bytes = bytes; self.pos = pos; self.file = file; self.persistentLoad = persistentLoad
    }

    private func fail(_ m: String) -> CheckpointError { CheckpointError(file: file, "pickle: \(m)") }

    // MARK: reading

    private mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - pos else {
            throw fail("data ends unexpectedly at byte \(bytes.count) (needed \(n) more bytes at \(pos); truncated?)")
        }
        defer { pos += n }
        return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
    }
    private mutating func u8() throws -> Int { Int(try take(1)[0]) }
    private mutating func u16() throws -> Int { Int(try take(2).le16(0)) }
    private mutating func u32() throws -> Int { Int(try take(4).le32(0)) }
    private mutating func i32() throws -> Int { Int(Int32(bitPattern: try take(4).le32(0))) }
    private mutating func u64() throws -> Int {
        let v = try take(8).le64(0)
        guard v <= UInt64(Int.max) else { throw fail("length \(v) is too large") }
        return Int(v)
    }
    /// A newline-terminated line (text opcodes), without the newline.
    private mutating func line() throws -> [UInt8] {
        var end = pos
        while end < bytes.count, bytes[end] != 0x0A { end += 1 }
        guard end < bytes.count else { throw fail("unterminated text argument at byte \(pos) (truncated?)") }
        let s = Array(bytes[pos..<end])
        pos = end + 1
        return s
    }
    private mutating func lineText() throws -> String { String(decoding: try line(), as: UTF8.self) }

    // MARK: stack

    private mutating func pop() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.popLast() else { throw fail("stack underflow at byte \(pos)") }
        return v
    }
    private func top() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.last else { throw fail("stack underflow at byte \(pos)") }
        return v
    }
    private mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw fail("MARK missing at byte \(pos)") }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }

    // MARK: the loop

    mutating func run() throws -> PickleValue {
        while true {
            let at = pos
            let op = UInt8(try u8())
            switch op {
            case 0x80:  // PROTO
                let v = try u8()
                guard v <= 5 else { throw fail("unsupported pickle protocol \(v)") }
            case 0x95: _ = try take(8)  // FRAME: a read-ahead hint only
            case UInt8(ascii: "."):  // STOP
                let v = try pop()
                return v
            case UInt8(ascii: "("): marks.append(stack.count)
            case UInt8(ascii: "0"):  // POP (of an empty mark region pops the mark, as CPython does)
                if stack.count > (marks.last ?? 0) { stack.removeLast() } else { _ = try popMark() }
            case UInt8(ascii: "1"): _ = try popMark()
            case UInt8(ascii: "2"): stack.append(try top())

            case UInt8(ascii: "N"): stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case UInt8(ascii: "K"): stack.append(.int(try u8()))
            case UInt8(ascii: "M"): stack.append(.int(try u16()))
            case UInt8(ascii: "J"): stack.append(.int(try i32()))
            case UInt8(ascii: "I"):
                let t = try lineText()
                if t == "00" { stack.append(.bool(false)) } else if t == "01" { stack.append(.bool(true)) } else {
                    guard let i = Int(t) else { throw fail("invalid INT \(quoted(t))") }
                    stack.append(.int(i))
                }
            case UInt8(ascii: "L"):
                var t = try lineText()
                if t.hasSuffix("L") { t.removeLast() }
                guard let i = Int(t) else { throw fail("LONG \(quoted(t)) is not a 64-bit integer") }
                stack.append(.int(i))
            case 0x8A: stack.append(PickleMachine.long(Array(try take(try u8()))))
            case 0x8B:
                let n = try i32()
                guard n >= 0 else { throw fail("negative LONG4 length") }
                stack.append(PickleMachine.long(Array(try take(n))))
            case UInt8(ascii: "G"): stack.append(.float(Double(bitPattern: UInt64(bigEndian: try take(8).loadUnaligned(as: UInt64.self)))))
            case UInt8(ascii: "F"):
                let t = try lineText()
                guard let d = Double(t) else { throw fail("invalid FLOAT \(quoted(t))") }
                stack.append(.float(d))

            case UInt8(ascii: "X"): stack.append(.string(utf8(try take(try u32()))))
            case 0x8C: stack.append(.string(utf8(try take(try u8()))))
            case 0x8D: stack.append(.string(utf8(try take(try u64()))))
            case UInt8(ascii: "V"): stack.append(.string(PickleMachine.rawUnicodeEscape(try line())))
            case UInt8(ascii: "T"):
                let n = try i32()
                guard n >= 0 else { throw fail("negative BINSTRING length") }
                stack.append(PickleMachine.py2String(Array(try take(n))))
            case UInt8(ascii: "U"): stack.append(PickleMachine.py2String(Array(try take(try u8()))))
            case UInt8(ascii: "S"): stack.append(PickleMachine.py2String(try stringLiteral(try line())))
            case UInt8(ascii: "B"): stack.append(.bytes(Array(try take(try u32()))))
            case UInt8(ascii: "C"): stack.append(.bytes(Array(try take(try u8()))))
            case 0x8E, 0x96: stack.append(.bytes(Array(try take(try u64()))))  // BINBYTES8, BYTEARRAY8
            case 0x97: throw fail("out-of-band buffers (NEXT_BUFFER) are not supported")
            case 0x98: break  // READONLY_BUFFER: no effect on our values

            case UInt8(ascii: "}"): stack.append(.dict(PickleDict()))
            case UInt8(ascii: "]"): stack.append(.list(PickleList()))
            case UInt8(ascii: ")"): stack.append(.tuple(PickleList()))
            case 0x8F: stack.append(.set(PickleList()))
            case UInt8(ascii: "d"):
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("DICT with an odd number of items") }
                let d = PickleDict()
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
                stack.append(.dict(d))
            case UInt8(ascii: "l"): stack.append(.list(PickleList(try popMark())))
            case UInt8(ascii: "t"): stack.append(.tuple(PickleList(try popMark())))
            case 0x91: stack.append(.set(PickleList(try popMark())))  // FROZENSET
            case 0x85: stack.append(.tuple(PickleList([try pop()])))
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple(PickleList([a, b])))
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple(PickleList([a, b, c])))
            case UInt8(ascii: "a"):
                let v = try pop()
                guard case .list(let l) = try top() else { throw fail("APPEND to \(try top().kind)") }
                l.items.append(v)
            case UInt8(ascii: "e"):
                let vs = try popMark()
                guard case .list(let l) = try top() else { throw fail("APPENDS to \(try top().kind)") }
                l.items.append(contentsOf: vs)
            case 0x90:
                let vs = try popMark()
                guard case .set(let s) = try top() else { throw fail("ADDITEMS to \(try top().kind)") }
                s.items.append(contentsOf: vs)
            case UInt8(ascii: "s"):
                let v = try pop(), k = try pop()
                guard case .dict(let d) = try top() else { throw fail("SETITEM on \(try top().kind)") }
                d.set(k, v)
            case UInt8(ascii: "u"):
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
                guard case .dict(let d) = try top() else { throw fail("SETITEMS on \(try top().kind)") }
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }

            case UInt8(ascii: "p"):
                guard let i = Int(try lineText()) else { throw fail("invalid PUT index") }
                memo[i] = try top()
            case UInt8(ascii: "q"): memo[try u8()] = try top()
            case UInt8(ascii: "r"): memo[try u32()] = try top()
            case 0x94: memo[memo.count] = try top()
            case UInt8(ascii: "g"):
                guard let i = Int(try lineText()) else { throw fail("invalid GET index") }
                stack.append(try recall(i))
            case UInt8(ascii: "h"): stack.append(try recall(try u8()))
            case UInt8(ascii: "j"): stack.append(try recall(try u32()))

            case UInt8(ascii: "c"):  // GLOBAL module\nname\n
                let module = try lineText(), name = try lineText()
                stack.append(try global(module, name))
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case .string(let n) = name, case .string(let m) = module else {
                    throw fail("STACK_GLOBAL needs two strings, got \(module.kind) and \(name.kind)")
                }
                stack.append(try global(m, n))
            case UInt8(ascii: "i"):  // INST module\nname\n with arguments above a MARK
                let module = try lineText(), name = try lineText()
                let cls = try global(module, name)
                stack.append(try call(cls, try popMark()))
            case UInt8(ascii: "o"):  // OBJ: class and arguments above a MARK
                var items = try popMark()
                guard !items.isEmpty else { throw fail("OBJ without a class") }
                let cls = items.removeFirst()
                stack.append(try call(cls, items))
            case UInt8(ascii: "R"), 0x81:  // REDUCE, NEWOBJ: callable/class, then an argument tuple
                let args = try pop(), f = try pop()
                guard let a = args.tupleItems else { throw fail("\(op == 0x81 ? "NEWOBJ" : "REDUCE") arguments are \(args.kind), not a tuple") }
                stack.append(try call(f, a))
            case 0x92:  // NEWOBJ_EX: class, args, kwargs (keyword arguments are dropped)
                _ = try pop()
                let args = try pop(), f = try pop()
                guard let a = args.tupleItems else { throw fail("NEWOBJ_EX arguments are \(args.kind), not a tuple") }
                stack.append(try call(f, a))
            case UInt8(ascii: "b"):  // BUILD: only opaque objects keep their state
                let state = try pop()
                if case .object(let o) = try top() { o.state = state }
            case UInt8(ascii: "Q"):
                stack.append(try persistent(try pop()))
            case UInt8(ascii: "P"):
                stack.append(try persistent(.string(try lineText())))
            case 0x82, 0x83, 0x84:
                throw fail("extension-registry opcodes (EXT1/2/4) are not allowed")
            default:
                throw fail("unknown opcode 0x\(String(op, radix: 16)) at byte \(at)")
            }
        }
    }

    private func recall(_ i: Int) throws -> PickleValue {
        guard let v = memo[i] else { throw fail("memo entry \(i) was never stored") }
        return v
    }

    private func persistent(_ pid: PickleValue) throws -> PickleValue {
        guard let load = persistentLoad else {
            throw fail("persistent id found, but this pickle has no external storage to refer to")
        }
        return try load(pid)
    }

    /// Resolves a global against the allow-list; anything else stops the load right here.
    private func global(_ module: String, _ name: String) throws -> PickleValue {
        let full = "\(module).\(name)"
        guard SafePickle.allowList[full] != nil else {
            throw CheckpointError(file: file, "refusing to load global \(quoted(full)) (only tensors, dicts and lists are allowed)")
        }
        return .global(full)
    }

    /// Interprets a call to an allow-listed global; nothing is actually called.
    private func call(_ f: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        guard case .global(let name) = f, let role = SafePickle.allowList[name] else {
            throw fail("cannot call \(f.kind)")
        }
        switch role {
        case .orderedDict:
            let d = PickleDict()
            // OrderedDict([(k, v), ...]) when a protocol writes the items as an argument.
            if let first = args.first, let pairs = first.items {
                for p in pairs {
                    guard let kv = p.items, kv.count == 2 else { throw fail("OrderedDict item is not a pair") }
                    d.set(kv[0], kv[1])
                }
            }
            return .dict(d)
        case .rebuildTensor:
            return .tensor(try rebuildTensor(args))
        case .rebuildParameter:
            guard let t = args.first else { throw fail("\(name) without arguments") }
            return t
        case .rebuildFromType:
            guard args.count >= 3, let inner = args[2].items else { throw fail("\(name) needs (func, type, args, state)") }
            // Its func is a tensor rebuild; refusing self-nesting keeps this recursion shallow.
            if case .global(let g) = args[0], case .rebuildFromType? = SafePickle.allowList[g] {
                throw fail("\(name) nested in itself")
            }
            return try call(args[0], inner)
        case .codecsEncode:
            guard let s = args.first?.stringValue else { throw fail("_codecs.encode needs a string") }
            let enc = (args.count > 1 ? args[1].stringValue ?? "" : "utf-8").lowercased()
            if ["latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"].contains(enc) {
                var out: [UInt8] = []
                out.reserveCapacity(s.unicodeScalars.count)
                for u in s.unicodeScalars {
                    guard u.value < 256 else { throw fail("_codecs.encode: character U+\(String(u.value, radix: 16)) is not latin-1") }
                    out.append(UInt8(u.value))
                }
                return .bytes(out)
            }
            throw fail("_codecs.encode with encoding \(quoted(enc)) is not supported (only latin1)")
        case .storageType:
            throw fail("\(name) cannot be called directly; storages come from persistent ids")
        case .inert:
            return .object(PickleObject(type: name, args: args))
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    private func rebuildTensor(_ args: [PickleValue]) throws -> PickledTensor {
        guard args.count >= 4 else { throw fail("_rebuild_tensor needs at least 4 arguments, got \(args.count)") }
        guard case .storage(let storage) = args[0] else { throw fail("_rebuild_tensor: first argument is \(args[0].kind), not a storage") }
        guard let offset = args[1].intValue else { throw fail("_rebuild_tensor: storage offset is \(args[1].kind)") }
        func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
            guard let items = v.items else { throw fail("_rebuild_tensor: \(what) is \(v.kind), not a tuple") }
            return try items.map {
                guard let i = $0.intValue else { throw fail("_rebuild_tensor: \(what) holds \($0.kind)") }
                return i
            }
        }
        let shape = try ints(args[2], "size"), strides = try ints(args[3], "stride")
        guard shape.count == strides.count else { throw fail("_rebuild_tensor: size \(shape) and stride \(strides) differ in rank") }
        return PickledTensor(storage: storage, storageOffset: offset, shape: shape, strides: strides)
    }

    // MARK: value helpers

    private func utf8(_ b: UnsafeRawBufferPointer) -> String { String(decoding: b, as: UTF8.self) }

    /// LONG1/LONG4 payload: little-endian two's complement.
    static func long(_ b: [UInt8]) -> PickleValue {
        if b.isEmpty { return .int(0) }
        if b.count > 8 {
            // Fits anyway if the extra high bytes are only sign extension.
            let signByte: UInt8 = b[7] & 0x80 != 0 ? 0xFF : 0
            if !b[8...].allSatisfy({ $0 == signByte }) { return .bigInt(b) }
        }
        var v: UInt64 = 0
        for (i, byte) in b.prefix(8).enumerated() { v |= UInt64(byte) << (8 * UInt64(i)) }
        let n = min(b.count, 8)
        if n < 8, b[n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }  // sign-extend
        return .int(Int(Int64(bitPattern: v)))
    }

    /// Python 2 `str` (BINSTRING & co.): torch loads with encoding='utf-8', so text when it
    /// decodes, bytes otherwise.
    static func py2String(_ b: [UInt8]) -> PickleValue {
        if let s = String(validating: b, as: UTF8.self) { return .string(s) }
        return .bytes(b)
    }

    /// Protocol-0 STRING argument: a quoted Python literal with backslash escapes.
    private func stringLiteral(_ raw: [UInt8]) throws -> [UInt8] {
        guard raw.count >= 2, let q = raw.first, q == raw.last, q == UInt8(ascii: "'") || q == UInt8(ascii: "\"") else {
            throw fail("STRING argument is not quoted")
        }
        let body = raw[1..<(raw.count - 1)]
        var out: [UInt8] = []
        var i = body.startIndex
        while i < body.endIndex {
            let c = body[i]; i += 1
            guard c == UInt8(ascii: "\\"), i < body.endIndex else { out.append(c); continue }
            let e = body[i]; i += 1
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "x"):
                guard i + 2 <= body.endIndex, let v = UInt8(String(decoding: body[i..<(i + 2)], as: UTF8.self), radix: 16) else {
                    throw fail("invalid \\x escape in STRING")
                }
                out.append(v); i += 2
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                var v = Int(e - UInt8(ascii: "0")), k = 0
                while k < 2, i < body.endIndex, (UInt8(ascii: "0")...UInt8(ascii: "7")).contains(body[i]) {
                    v = v * 8 + Int(body[i] - UInt8(ascii: "0")); i += 1; k += 1
                }
                out.append(UInt8(truncatingIfNeeded: v))
            default: out.append(e)  // \\ \' \" and unknown escapes keep the character
            }
        }
        return out
    }

    /// Protocol-0 UNICODE argument: latin-1 text with \uXXXX and \UXXXXXXXX escapes.
    static func rawUnicodeEscape(_ b: [UInt8]) -> String {
        var s = String.UnicodeScalarView()
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "u") || b[i + 1] == UInt8(ascii: "U") {
                let n = b[i + 1] == UInt8(ascii: "u") ? 4 : 8
                if i + 2 + n <= b.count, let v = UInt32(String(decoding: b[(i + 2)..<(i + 2 + n)], as: UTF8.self), radix: 16),
                   let u = Unicode.Scalar(v) {
                    s.append(u); i += 2 + n; continue
                }
            }
            s.append(Unicode.Scalar(b[i])); i += 1
        }
        return String(s)
    }
}
