import Foundation
import Testing
@testable import Checkpoints
import Tensors

@Suite struct TorchFixtures {
    /// Every tensor must equal state_dict_expected.safetensors bit for bit.
    func expectMatchesExpected(_ archive: CheckpointArchive) throws {
        let expected = try SafeTensorsFile(path: fixture("checkpoints/state_dict_expected.safetensors"))
        #expect(Set(archive.tensors.keys) == Set(expected.tensors.keys))
        for name in expected.names {
            let want = try expected[name]!.float32()
            let got = try archive.tensor(name)
            #expect(got.shape == want.shape, "\(name)")
            #expect(got.scalars.map(\.bitPattern) == want.scalars.map(\.bitPattern), "\(name)")
        }
    }

    @Test func zipStateDict() throws {
        let a = try Checkpoint.open(fixture("checkpoints/state_dict_zip.pt"))
        #expect(a.format == .pytorchZip)
        try expectMatchesExpected(a)
        #expect(a["b"]?.dtype == .f16 && a["c"]?.dtype == .bf16 && a["i"]?.dtype == .i64)
        #expect(a["t"]?.strides == [1, 4] && a["t"]?.isContiguous == false)
        #expect(a["v"]?.storageOffset == 2 && a["v2"]?.storageOffset == 5)
        #expect(a["v"]?.storage.byteOffset == a["v2"]?.storage.byteOffset)
        // Aligned, contiguous F32 from a zip entry is borrowed from the mapping.
        let e = try #require(a["a"])
        #expect(UnsafeRawPointer(try e.float32().pointer) == e.file.base + e.byteOffset)
    }

    @Test func legacyStateDict() throws {
        let a = try Checkpoint.open(fixture("checkpoints/state_dict_legacy.pt"))
        #expect(a.format == .pytorchLegacy)
        try expectMatchesExpected(a)
        #expect(a["t"]?.strides == [1, 4])
    }

    @Test func lightningCheckpointUnwrapsStateDict() throws {
        let a = try Checkpoint.open(fixture("checkpoints/nested.ckpt"))
        #expect(a.names == ["model.diffusion_model.x"])
        #expect(a["model.diffusion_model.x"]?.dtype == .f16)
        #expect(a["model.diffusion_model.x"]?.shape == [2, 2])
        #expect(a.pickle?["global_step"]?.intValue == 7)
        #expect(a.pickle?["epoch"]?.intValue == 1)
        #expect(a.detection.kind == .sd1Checkpoint)
    }

    @Test func a1111Embeddings() throws {
        var vectors: [[Float]] = []
        for name in ["a1111_embedding.pt", "a1111_embedding_param.pt"] {
            let a = try Checkpoint.open(fixture("checkpoints/\(name)"))
            let ti = try TextualInversionEmbedding(a)
            #expect(ti.layout == .a1111)
            #expect(ti.name == "corajr")
            #expect(ti.token == "*")
            #expect(ti.step == 20000)
            #expect(ti.vectorCount == 2 && ti.width == 768)
            #expect(a.pickle?["string_to_token"]?["*"]?.intValue == 265)
            #expect(a.pickle?["sd_checkpoint_name"]?.stringValue == "v1-5-pruned-emaonly")
            #expect(a.detection.kind == .textualInversion)
            vectors.append(try ti.float32Vectors().scalars)
        }
        #expect(vectors[0] == vectors[1])
    }

    @Test func diffusersAndKohyaEmbeddings() throws {
        let d = try TextualInversionEmbedding(try Checkpoint.open(fixture("checkpoints/diffusers_embedding.bin")))
        #expect(d.layout == .diffusers && d.token == "<winniecat>" && d.vectorCount == 1 && d.width == 768)
        #expect(try d.float32Vectors().shape == [1, 768])
        #expect(d.name == "diffusers_embedding")
        let kohya = try Checkpoint.open(fixture("checkpoints/kohya_embedding.safetensors"))
        let k = try TextualInversionEmbedding(kohya)
        #expect(k.layout == .kohya && k.vectorCount == 3 && k.width == 768)
        #expect(kohya.detection.kind == .textualInversion)
        #expect(kohya.detection.summary == "textual-inversion embedding (kohya layout, 3 vectors of 768)")
    }

    @Test func hostileFilesAreRefusedNamingTheGlobal() {
        let cases = [
            ("hostile_os_system.pt", "refusing to load global 'os.system' (only tensors, dicts and lists are allowed)"),
            ("hostile_builtins_eval.pt", "refusing to load global 'builtins.eval'"),
            ("hostile_raw.pkl", "refusing to load global 'os.system'"),
            ("hostile_nested_global.pt", "refusing to load global 'subprocess.Popen'"),
        ]
        for (name, message) in cases {
            expectCheckpointError(["\(name): \(message)"]) { _ = try Checkpoint.open(fixture("checkpoints/\(name)")) }
        }
    }

    @Test func malformedTorchFiles() {
        expectCheckpointError(["truncated_zip.pt: ", "end-of-central-directory"]) {
            _ = try Checkpoint.open(fixture("checkpoints/truncated_zip.pt"))
        }
        expectCheckpointError(["not_a_checkpoint.txt: not a checkpoint (expected .safetensors, a PyTorch zip .pt/.ckpt/.bin, or a legacy PyTorch pickle)"]) {
            _ = try Checkpoint.open(fixture("checkpoints/not_a_checkpoint.txt"))
        }
        expectCheckpointError(["missing.pt: no such file"]) { _ = try Checkpoint.open(fixture("checkpoints/missing.pt")) }
    }

    /// Every prefix of a valid file must fail cleanly (or, rarely, still parse), never crash.
    @Test func everyTruncationFailsCleanly() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["state_dict_zip.pt", "state_dict_legacy.pt", "state_dict_expected.safetensors"] {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture("checkpoints/\(name)"))))
            let ext = URL(fileURLWithPath: name).pathExtension
            for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
                let path = try writeTemp(Array(bytes[..<cut]), name: "cut.\(ext)", in: dir)
                do {
                    let a = try Checkpoint.open(path)
                    for n in a.names { _ = try a.tensor(n) }
                } catch is CheckpointError {
                } catch {
                    Issue.record("\(name) cut at \(cut): \(error)")
                }
            }
        }
    }
}

@Suite struct CraftedTorchZips {
    /// A zip with top folder `stem/` holding a pickle of {"w": view, "u": view} over one storage.
    func zipFile(_ pickle: [UInt8], storage: [UInt8], extra: [(String, [UInt8])] = [], zip64: Bool = false,
                 align: Bool = true, method: UInt16 = 0) -> [UInt8] {
        makeZip([("stem/data.pkl", pickle), ("stem/version", Array("3\n".utf8))] + extra + [("stem/data/0", storage)],
                zip64: zip64, method: method, alignData: align)
    }

    func viewsPickle(_ views: [(String, Int, [Int], [Int])], storageClass: String = "FloatStorage", numel: Int = 12) -> [UInt8] {
        var p = PickleBuilder()
        p.proto()
        p.global("collections", "OrderedDict"); p.op(UInt8(ascii: ")")); p.op(UInt8(ascii: "R")); p.put(0)
        p.mark()
        for (name, offset, shape, strides) in views {
            p.str(name)
            p.tensor(storageClass: storageClass, key: "0", numel: numel, offset: offset, shape: shape, strides: strides)
        }
        p.op(UInt8(ascii: "u"))
        p.stop()
        return p.bytes
    }

    let twelve: [Float] = (0..<12).map { Float($0) }

    @Test func stridedViewsAndOtherPrefix() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (zip64, align) in [(false, true), (true, true), (false, false)] {
            let pickle = viewsPickle([("w", 0, [3, 2], [1, 3]), ("u", 6, [2, 3], [3, 1]), ("e", 3, [2, 0], [1, 1]), ("x", 11, [], [])])
            let path = try writeTemp(zipFile(pickle, storage: f32Bytes(twelve), zip64: zip64, align: align), name: "m.pt", in: dir)
            let a = try Checkpoint.open(path)
            #expect(a.format == .pytorchZip)
            #expect(try a.tensor("w").scalars == [0, 3, 1, 4, 2, 5])
            #expect(try a.tensor("u").scalars == [6, 7, 8, 9, 10, 11])
            #expect(try a.tensor("e").shape == [2, 0])
            #expect(try a.tensor("x").scalars == [11])
            #expect(a.names == ["e", "u", "w", "x"])
        }
    }

    @Test func bigEndianByteOrderIsHonoured() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let be = twelve.flatMap { withUnsafeBytes(of: $0.bitPattern.bigEndian, Array.init) }
        let pickle = viewsPickle([("w", 1, [2, 2], [2, 1])])
        let path = try writeTemp(zipFile(pickle, storage: be, extra: [("stem/byteorder", Array("big".utf8))]), name: "be.pt", in: dir)
        #expect(try Checkpoint.open(path).tensor("w").scalars == [1, 2, 3, 4])
    }

    @Test func viewOutsideStorageIsRefused() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pickle = viewsPickle([("too_far", 4, [3, 3], [3, 1])])
        let path = try writeTemp(zipFile(pickle, storage: f32Bytes(twelve)), name: "oob.pt", in: dir)
        expectCheckpointError(["oob.pt: tensor 'too_far'", "needs 13 elements but its storage holds 12"]) { _ = try Checkpoint.open(path) }
    }

    @Test func hugeBroadcastIsRefused() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let small = viewsPickle([("b", 0, [4, 3], [0, 1])])
        let ok = try writeTemp(zipFile(small, storage: f32Bytes(twelve)), name: "bcast.pt", in: dir)
        #expect(try Checkpoint.open(ok).tensor("b").scalars == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
        let huge = viewsPickle([("h", 0, [1 << 20, 1 << 20], [0, 0])])
        let bad = try writeTemp(zipFile(huge, storage: f32Bytes(twelve)), name: "huge.pt", in: dir)
        expectCheckpointError(["huge.pt: tensor 'h'", "broadcasts a storage of 12"]) { _ = try Checkpoint.open(bad) }
    }

    @Test func compressedEntryAndMissingPickleAreRefused() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pickle = viewsPickle([("w", 0, [2], [1])])
        let deflated = try writeTemp(zipFile(pickle, storage: f32Bytes(twelve), method: 8), name: "deflated.pt", in: dir)
        expectCheckpointError(["deflated.pt: ZIP entry 'stem/data.pkl' is compressed (method 8)"]) { _ = try Checkpoint.open(deflated) }
        let noPickle = try writeTemp(makeZip([("x/other", [1, 2, 3])]), name: "nopkl.pt", in: dir)
        expectCheckpointError(["nopkl.pt: ZIP archive has no data.pkl entry"]) { _ = try Checkpoint.open(noPickle) }
        let missingStorage = try writeTemp(makeZip([("stem/data.pkl", pickle)]), name: "nostore.pt", in: dir)
        expectCheckpointError(["nostore.pt: storage '0' has no entry 'stem/data/0'"]) { _ = try Checkpoint.open(missingStorage) }
    }

    @Test func halfStorageAndParameterWrapper() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var p = PickleBuilder()
        p.proto()
        p.op(UInt8(ascii: "}"))
        p.str("p")
        p.global("torch._utils", "_rebuild_parameter")
        p.mark()
        p.tensor(storageClass: "HalfStorage", key: "0", numel: 3, offset: 1, shape: [2], strides: [1])
        p.op(0x88)
        p.global("collections", "OrderedDict"); p.op(UInt8(ascii: ")")); p.op(UInt8(ascii: "R"))
        p.op(UInt8(ascii: "t")); p.op(UInt8(ascii: "R"))
        p.op(UInt8(ascii: "s"))
        p.stop()
        let halves = [0x3C00, 0xC000, 0x3800].flatMap { le16($0) }
        let path = try writeTemp(zipFile(p.bytes, storage: halves), name: "half.pt", in: dir)
        let a = try Checkpoint.open(path)
        #expect(a["p"]?.dtype == .f16)
        #expect(try a.tensor("p").scalars == [-2, 0.5])
    }
}
