import Foundation
import Testing
@testable import Checkpoints

@Suite struct SafePickleVM {
    func load(_ bytes: [UInt8], file: String = "t.pkl") throws -> PickleValue {
        try bytes.withUnsafeBytes { try SafePickle.load($0, file: file).value }
    }
    func loadError(_ bytes: [UInt8], _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        expectCheckpointError(fragments, sourceLocation: sourceLocation) { _ = try load(bytes) }
    }

    @Test func protocol2and4Opcodes() throws {
        var p = PickleBuilder()
        p.proto(4)
        p.op(0x95, le64(0))  // FRAME
        p.op(UInt8(ascii: "}")); p.op(0x94)  // EMPTY_DICT, MEMOIZE -> memo 0
        p.mark()
        p.str("none"); p.op(UInt8(ascii: "N"))
        p.str("t"); p.op(0x88)
        p.str("f"); p.op(0x89)
        p.str("k"); p.int(200)
        p.str("m"); p.int(60000)
        p.str("j"); p.op(UInt8(ascii: "J"), le32(Int(UInt32(bitPattern: -5))))
        p.str("l1"); p.op(0x8A, [3, 0x00, 0x80, 0x00])  // LONG1 32768
        p.str("l1m"); p.op(0x8A, [2, 0x00, 0x80])  // -32768
        p.str("l1n"); p.op(0x8A, [1, 0xFF])  // -1
        p.str("l1z"); p.op(0x8A, [0])
        p.str("big"); p.op(0x8A, [10, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19])
        p.str("l4"); p.op(0x8B, le32(3) + [1, 2, 3])
        p.str("g"); p.op(UInt8(ascii: "G"), withUnsafeBytes(of: (1.5 as Double).bitPattern.bigEndian, Array.init))
        p.str("u8"); p.op(0x8D, le64(2) + Array("hi".utf8))
        p.str("pop"); p.int(1); p.int(2); p.op(UInt8(ascii: "0"))  // POP drops the 2
        p.str("u"); p.binunicode("héllo")
        p.str("ss"); p.op(UInt8(ascii: "U"), [3] + Array("abc".utf8))
        p.str("bs"); p.op(UInt8(ascii: "T"), le32(2) + [0xFF, 0xFE])
        p.str("b"); p.op(UInt8(ascii: "B"), le32(2) + [1, 2])
        p.str("sb"); p.op(UInt8(ascii: "C"), [1, 9])
        p.str("b8"); p.op(0x8E, le64(1) + [7])
        p.str("ba"); p.op(0x96, le64(1) + [8])
        p.str("tup"); p.int(1); p.int(2); p.int(3); p.op(0x87)
        p.str("t2"); p.int(1); p.int(2); p.op(0x86)
        p.str("t1"); p.int(1); p.op(0x85)
        p.str("t0"); p.op(UInt8(ascii: ")"))
        p.str("tm"); p.mark(); p.int(4); p.int(5); p.op(UInt8(ascii: "t"))
        p.str("list"); p.op(UInt8(ascii: "]")); p.put(1); p.int(1); p.op(UInt8(ascii: "a")); p.mark(); p.int(2); p.int(3); p.op(UInt8(ascii: "e"))
        p.str("list2"); p.mark(); p.int(9); p.op(UInt8(ascii: "l"))
        p.str("again"); p.get(1)
        p.str("long"); p.op(UInt8(ascii: "j"), le32(1))
        p.str("set"); p.op(0x8F); p.mark(); p.int(1); p.op(0x90)
        p.str("fs"); p.mark(); p.int(1); p.op(0x91)
        p.str("dup"); p.int(6); p.op(UInt8(ascii: "2")); p.op(0x86)
        p.str("pm"); p.int(1); p.mark(); p.int(2); p.int(3); p.op(UInt8(ascii: "1"))
        p.str("sg"); p.str("collections"); p.str("OrderedDict"); p.op(0x93); p.op(UInt8(ascii: ")")); p.op(0x81)
        p.str("enc"); p.global("_codecs", "encode"); p.binunicode("\u{00FF}a"); p.str("latin1"); p.op(0x86); p.op(UInt8(ascii: "R"))
        p.str("d"); p.mark(); p.int(1); p.str("x"); p.op(UInt8(ascii: "d"))
        p.op(UInt8(ascii: "u"))
        p.str("late"); p.int(42); p.op(UInt8(ascii: "s"))
        p.op(UInt8(ascii: "r"), le32(7)); p.op(UInt8(ascii: "0"))  // LONG_BINPUT, POP the dict, fetch it back
        p.op(UInt8(ascii: "h"), [0])
        p.stop()
        let v = try load(p.bytes)
        let d = try #require(v.dictValue)
        if case .none? = d["none"] {} else { Issue.record("none") }
        if case .bool(true)? = d["t"], case .bool(false)? = d["f"] {} else { Issue.record("bools") }
        #expect(d["k"]?.intValue == 200 && d["m"]?.intValue == 60000 && d["j"]?.intValue == -5)
        #expect(d["l1"]?.intValue == 32768 && d["l1m"]?.intValue == -32768 && d["l1n"]?.intValue == -1 && d["l1z"]?.intValue == 0 && d["l4"]?.intValue == 0x030201)
        if case .bigInt(let b)? = d["big"] { #expect(b.count == 10) } else { Issue.record("bigInt") }
        if case .float(1.5)? = d["g"] {} else { Issue.record("float") }
        #expect(d["u8"]?.stringValue == "hi" && d["pop"]?.intValue == 1)
        #expect(d["long"]?.items?.count == 3)
        #expect(d["u"]?.stringValue == "héllo" && d["ss"]?.stringValue == "abc")
        if case .bytes([0xFF, 0xFE])? = d["bs"] {} else { Issue.record("binstring that is not UTF-8 stays bytes") }
        if case .bytes([1, 2])? = d["b"], case .bytes([9])? = d["sb"], case .bytes([7])? = d["b8"], case .bytes([8])? = d["ba"] {} else { Issue.record("bytes") }
        #expect(d["tup"]?.items?.compactMap(\.intValue) == [1, 2, 3])
        #expect(d["t2"]?.items?.count == 2 && d["t1"]?.items?.count == 1 && d["t0"]?.items?.count == 0)
        #expect(d["tm"]?.items?.compactMap(\.intValue) == [4, 5])
        #expect(d["list"]?.items?.compactMap(\.intValue) == [1, 2, 3])
        #expect(d["again"]?.items?.compactMap(\.intValue) == [1, 2, 3])  // memo shares the filled list
        #expect(d["list2"]?.items?.compactMap(\.intValue) == [9])
        #expect(d["set"]?.items?.count == 1 && d["fs"]?.items?.count == 1)
        #expect(d["dup"]?.items?.compactMap(\.intValue) == [6, 6])
        #expect(d["pm"]?.intValue == 1)
        #expect(d["sg"]?.dictValue?.count == 0)
        if case .bytes([0xFF, 0x61])? = d["enc"] {} else { Issue.record("_codecs.encode latin1") }
        #expect(d["d"]?.dictValue?[1]?.stringValue == "x")
        #expect(d["late"]?.intValue == 42)
    }

    @Test func memoisedDictSeesLaterItems() throws {
        var p = PickleBuilder()
        p.proto()
        p.op(UInt8(ascii: "]")); p.put(0)
        p.op(UInt8(ascii: "}")); p.put(1)  // empty dict memoised, then appended, then filled
        p.op(UInt8(ascii: "a"))
        p.get(1); p.str("k"); p.int(5); p.op(UInt8(ascii: "s")); p.op(UInt8(ascii: "0"))
        p.stop()
        let v = try load(p.bytes)
        #expect(v.items?.first?["k"]?.intValue == 5)
    }

    @Test func protocol0TextOpcodes() throws {
        let text = "(dp0\nS'a'\np1\nI42\nsS'b'\nL123L\nsS'c'\nF2.5\nsS'd'\nV\\u00e9t\\u00e9\nsS'e'\ng1\nsS'f'\n(lp2\nI01\naI00\nasS'g'\nS'x\\n\\'y\\x41'\ns."
        let v = try load(Array(text.utf8))
        #expect(v["a"]?.intValue == 42 && v["b"]?.intValue == 123)
        if case .float(2.5)? = v["c"] {} else { Issue.record("FLOAT") }
        #expect(v["d"]?.stringValue == "été")
        #expect(v["e"]?.stringValue == "a")
        #expect(v["f"]?.items?.count == 2)
        #expect(v["g"]?.stringValue == "x\n'yA")
    }

    @Test func refusesEveryOtherGlobal() {
        // GLOBAL, STACK_GLOBAL and INST all check the allow-list.
        var g = PickleBuilder(); g.proto(); g.global("os", "system"); g.stop()
        loadError(g.bytes, ["t.pkl: refusing to load global 'os.system' (only tensors, dicts and lists are allowed)"])
        var s = PickleBuilder(); s.proto(4); s.str("posix"); s.str("system"); s.op(0x93); s.stop()
        loadError(s.bytes, ["refusing to load global 'posix.system'"])
        loadError(Array("(S'ls'\nios\nsystem\n.".utf8), ["refusing to load global 'os.system'"])
        for (m, n) in [("torch", "load"), ("torch.serialization", "_get_layout"), ("builtins", "getattr"), ("__builtin__", "set"),
                       ("torch._utils", "_rebuild_device_tensor_from_numpy"), ("collections", "OrderedDict.fromkeys"),
                       ("numpy", "load")] {
            var b = PickleBuilder(); b.proto(); b.global(m, n); b.stop()
            loadError(b.bytes, ["refusing to load global"])
        }
        var nl = PickleBuilder(); nl.proto(); nl.op(UInt8(ascii: "c"), Array("evil\nname\u{2028}x\n".utf8)); nl.stop()
        loadError(nl.bytes, ["refusing"])
    }

    @Test func nothingIsExecuted() throws {
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("pwned-\(UUID().uuidString)").path
        let payloads = [
            "cos\nsystem\n(S'touch \(marker)'\ntR.",
            "\u{80}\u{02}cposix\nsystem\nX\(String(UnicodeScalar(UInt8(6 + marker.utf8.count))))\u{0}\u{0}\u{0}touch \(marker)\u{85}R.",
            "cbuiltins\nexec\n(S'open(\"\(marker)\",\"w\")'\ntR.",
            "csubprocess\ncall\n((S'touch'\nS'\(marker)'\nltR.",
        ]
        for payload in payloads {
            let bytes = Array(payload.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
            loadError(bytes, ["refusing to load global"])
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func malformedPicklesFailCleanly() {
        loadError([], ["data ends unexpectedly"])
        loadError([0x80, 0x02, 0x4B], ["data ends unexpectedly"])
        loadError([0x80, 0x09, 0x2E], ["unsupported pickle protocol 9"])
        loadError([0x80, 0x02, 0x2E], ["stack underflow"])
        loadError([0x80, 0x02, 0xFF], ["unknown opcode 0xff at byte 2"])
        loadError([0x80, 0x02, 0x68, 0x03, 0x2E], ["memo entry 3 was never stored"])
        loadError([0x80, 0x02, 0x4B, 0x01, 0x51, 0x2E], ["persistent id found"])
        loadError([0x80, 0x02, 0x4B, 0x00, 0x4B, 0x01, 0x4B, 0x02, 0x73, 0x2E], ["SETITEM on int"])
        loadError([0x80, 0x02, 0x4B, 0x01, 0x29, 0x52, 0x2E], ["cannot call int"])
        loadError([0x80, 0x02, 0x82, 0x01, 0x2E], ["extension-registry"])
        loadError([0x80, 0x02, 0x65, 0x2E], ["MARK missing"])
        loadError([0x80, 0x02, 0x8C, 0x05, 0x41], ["data ends unexpectedly"])
        loadError([0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0x7F, 0x41], ["data ends unexpectedly"])
        var enc = PickleBuilder(); enc.proto(); enc.global("_codecs", "encode"); enc.str("x"); enc.str("rot13"); enc.op(0x86); enc.op(UInt8(ascii: "R")); enc.stop()
        loadError(enc.bytes, ["only latin1"])
        var st = PickleBuilder(); st.proto(); st.global("torch", "FloatStorage"); st.op(UInt8(ascii: ")")); st.op(UInt8(ascii: "R")); st.stop()
        loadError(st.bytes, ["cannot be called directly"])
        var rb = PickleBuilder(); rb.proto(); rb.global("torch._utils", "_rebuild_tensor_v2"); rb.int(1); rb.int(0); rb.op(0x86); rb.op(UInt8(ascii: "R")); rb.stop()
        loadError(rb.bytes, ["_rebuild_tensor needs at least 4 arguments"])
    }

    @Test func randomBytesNeverCrash() {
        var rng = SystemRandomNumberGenerator()
        var seed = PickleBuilder()
        seed.proto(); seed.op(UInt8(ascii: "}")); seed.str("a"); seed.tensor(storageClass: "FloatStorage", key: "0", numel: 4, offset: 0, shape: [2], strides: [1]); seed.op(UInt8(ascii: "s")); seed.stop()
        for _ in 0..<2000 {
            var b = seed.bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) { b[Int.random(in: 0..<b.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            _ = try? b.withUnsafeBytes { try SafePickle.load($0, file: "fuzz.pkl") { _ in .none } }
        }
    }

    @Test func inertClassesBecomeOpaqueObjects() throws {
        // numpy scalar inside Lightning-style training state: kept as data, never interpreted.
        var p = PickleBuilder()
        p.proto()
        p.op(UInt8(ascii: "}"))
        p.str("score")
        p.global("numpy.core.multiarray", "scalar")
        p.global("numpy", "dtype"); p.str("f8"); p.op(0x89); p.op(0x88); p.op(0x87); p.op(UInt8(ascii: "R"))
        p.mark(); p.int(3); p.str("<"); p.op(UInt8(ascii: "N")); p.op(UInt8(ascii: "t")); p.op(UInt8(ascii: "b"))
        p.op(UInt8(ascii: "C"), [8] + [UInt8](repeating: 0, count: 8)); p.op(0x86); p.op(UInt8(ascii: "R"))
        p.op(UInt8(ascii: "s"))
        p.stop()
        let v = try load(p.bytes)
        guard case .object(let o)? = v["score"] else { Issue.record("expected an object"); return }
        #expect(o.type == "numpy.core.multiarray.scalar" && o.args.count == 2)
        guard case .object(let dt) = o.args[0] else { Issue.record("dtype"); return }
        #expect(dt.state?.items?.count == 3)
    }

    @Test func deepNestingIsReleasedWithoutRecursion() throws {
        // A million nested lists: recursive deinit or walking would overflow the stack.
        let n = 1_000_000
        let bytes: [UInt8] = [0x80, 0x02] + [UInt8](repeating: UInt8(ascii: "]"), count: n)
            + [UInt8](repeating: UInt8(ascii: "a"), count: n - 1) + [UInt8(ascii: ".")]
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = try writeTemp(bytes, name: "deep.pkl", in: dir)
        let a = try Checkpoint.open(path)
        #expect(a.format == .pickle && a.tensors.isEmpty)
    }

    @Test func sharedTuplesAreWalkedOnce() throws {
        // T(k+1) = (Tk, Tk), 80 levels: naive flattening would visit 2^80 paths.
        var p = PickleBuilder()
        p.proto()
        p.op(UInt8(ascii: ")")); p.put(0)
        for k in 0..<80 { p.get(k); p.get(k); p.op(0x86); p.put(k + 1) }
        p.stop()
        let v = try load(p.bytes)
        #expect(try Checkpoint.flatten(v, file: "x").isEmpty)
    }
}
