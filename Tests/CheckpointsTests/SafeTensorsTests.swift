import Foundation
import Testing
@testable import Checkpoints
import Tensors

@Suite struct SafeTensorsReading {
    @Test func readsExpectedFixture() throws {
        let st = try SafeTensorsFile(path: fixture("checkpoints/state_dict_expected.safetensors"))
        #expect(Set(st.tensors.keys) == ["a", "b", "c", "t", "v", "v2", "i", "s"])
        #expect(st.metadata["desc"] != nil)
        #expect(st["a"]?.shape == [3, 4])
        #expect(st["s"]?.shape == [])
        #expect(st["t"]?.shape == [4, 3])
        let v = try #require(st["v"]).float32()
        #expect(v.scalars == [-1.0, -0.5, 0.0, 0.5])  // arange(10)*0.5-2, [2:6]
        #expect(try st["i"]!.float32().scalars == [-3, 0, Float(1 << 40)])
        #expect(try st["s"]!.float32().scalars == [3.25])
    }

    @Test func alignedF32IsBorrowedNotCopied() throws {
        let st = try SafeTensorsFile(path: fixture("checkpoints/state_dict_expected.safetensors"))
        let e = try #require(st["a"])
        let t = try e.float32()
        #expect(UnsafeRawPointer(t.pointer) == st.file.base + e.byteOffset)
    }

    @Test func malformedFixturesAreRefused() {
        let cases: [(String, [String])] = [
            ("truncated.safetensors", ["truncated.safetensors:", "past the end"]),
            ("bad_header_len.safetensors", ["bad_header_len.safetensors: header length", "exceeds file size"]),
            ("bad_json.safetensors", ["bad_json.safetensors: header is not valid JSON"]),
            ("bad_offsets.safetensors", ["bad_offsets.safetensors: tensor 'b'", "past the end of the data"]),
            ("overlap.safetensors", ["overlap.safetensors: tensors", "'w'", "'b'", "overlap"]),
            ("bad_dtype_shape.safetensors", ["bad_dtype_shape.safetensors: tensor 'w' holds 20 bytes but F32 [3, 3] needs 36"]),
        ]
        for (name, fragments) in cases {
            expectCheckpointError(fragments) { _ = try SafeTensorsFile(path: fixture("checkpoints/\(name)")) }
            expectCheckpointError([name]) { _ = try Checkpoint.open(fixture("checkpoints/\(name)")) }
        }
    }

    @Test func craftedMalformedHeaders() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = f32Bytes([1, 2, 3, 4])
        let cases: [(String, [UInt8], String)] = [
            ("short", [1, 2, 3], "too short"),
            ("huge", le64(200_000_000) + [UInt8](repeating: 0x20, count: 16), "exceeds the safetensors limit"),
            ("array", safetensorsBytes(header: "[1,2]", data: []), "header is a list, expected a JSON object"),
            ("dtype", safetensorsBytes(header: #"{"x":{"dtype":"F4","shape":[4],"data_offsets":[0,16]}}"#, data: data), "tensor 'x' has unsupported dtype 'F4'"),
            ("negshape", safetensorsBytes(header: #"{"x":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#, data: data), "tensor 'x' has shape [-4]"),
            ("fracshape", safetensorsBytes(header: #"{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,16]}}"#, data: data), "tensor 'x' has shape"),
            ("reversed", safetensorsBytes(header: #"{"x":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}}"#, data: data), "begin after end"),
            ("nooffsets", safetensorsBytes(header: #"{"x":{"dtype":"F32","shape":[4]}}"#, data: data), "tensor 'x' needs data_offsets"),
            ("metadata", safetensorsBytes(header: #"{"__metadata__":{"a":1}}"#, data: []), "__metadata__ value for 'a' is a number"),
            ("dup", safetensorsBytes(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: data), "appears twice"),
            ("trailing", safetensorsBytes(header: #"{} x"#, data: []), "not valid JSON"),
            ("deep", safetensorsBytes(header: String(repeating: "[", count: 500), data: []), "not valid JSON"),
            ("newline", safetensorsBytes(header: "{\"a\\nb\":{\"dtype\":\"Q\",\"shape\":[],\"data_offsets\":[0,0]}}", data: []), "tensor 'a\\nb'"),
        ]
        for (name, bytes, fragment) in cases {
            let path = try writeTemp(bytes, name: "\(name).safetensors", in: dir)
            expectCheckpointError(["\(name).safetensors: ", fragment]) { _ = try SafeTensorsFile(path: path) }
        }
    }

    @Test func otherFixturesReadCompletely() throws {
        for name in ["kernels.safetensors", "blocks.safetensors", "tiny-sd/unet/diffusion_pytorch_model.safetensors"] {
            let st = try SafeTensorsFile(path: fixture(name))
            #expect(!st.names.isEmpty)
            for n in st.names { #expect(try st[n]!.float32().count == st[n]!.elementCount) }
        }
    }

    @Test func nullMetadataIsAccepted() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = try writeTemp(safetensorsBytes(header: #"{"__metadata__":null}"#, data: []), name: "n.safetensors", in: dir)
        #expect(try SafeTensorsFile(path: path).metadata.isEmpty)
    }

    @Test func unalignedAndHalfDataConvert() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Header of odd length: the data buffer starts unaligned; F32 must be copied, F16 realigned.
        var halves: [UInt8] = []
        for h: UInt16 in [0x3C00, 0xC000, 0x3555, 0x0001, 0x7C00] { halves += le16(Int(h)) }
        let bf: [UInt8] = le16(0x3F80) + le16(0xC040)
        let data = f32Bytes([1.5, -2]) + halves + bf + [0xFF, 0x01]
        var header = #"{"f":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"h":{"dtype":"F16","shape":[5],"data_offsets":[8,18]},"#
            + #""b":{"dtype":"BF16","shape":[2],"data_offsets":[18,22]},"u":{"dtype":"U8","shape":[2],"data_offsets":[22,24]},"#
            + #""z":{"dtype":"F32","shape":[0,3],"data_offsets":[24,24]},"__metadata__":{"k":"v"}}"#
        if (8 + header.utf8.count) % 2 == 0 { header += " " }
        let path = try writeTemp(safetensorsBytes(header: header, data: data), name: "odd.safetensors", in: dir)
        let st = try SafeTensorsFile(path: path)
        #expect(st.metadata == ["k": "v"])
        #expect(try st["f"]!.float32().scalars == [1.5, -2])
        #expect(try st["h"]!.float32().scalars == [1, -2, 0.333251953125, 0x1p-24, .infinity])
        #expect(try st["b"]!.float32().scalars == [1, -3])
        #expect(try st["u"]!.float32().scalars == [255, 1])
        let z = try st["z"]!.float32()
        #expect(z.shape == [0, 3] && z.count == 0)
        #expect(st.names == ["f", "h", "b", "u", "z"])
    }
}

@Suite struct SafeTensorsWriting {
    @Test func roundTripF32AndMetadata() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("out.safetensors").path
        let a = try Tensor(shape: [2, 3], scalars: [1, -2, 3.5, .pi, -0.0, 1e-30])
        let b = try Tensor(shape: [], scalars: [7])
        let c = Tensor(zeros: [0, 4])
        try SafeTensorsWriter.write(["b": b, "a": a, "c\"q": c], metadata: ["format": "pt", "x\ny": "z"], to: path)
        let st = try SafeTensorsFile(path: path)
        #expect(st.dataOffset % 8 == 0)
        #expect(st.metadata == ["format": "pt", "x\ny": "z"])
        #expect(try st["a"]!.float32().scalars.map(\.bitPattern) == a.scalars.map(\.bitPattern))
        #expect(try st["b"]!.float32().scalars == [7])
        #expect(st["c\"q"]?.shape == [0, 4])
        #expect(st.names == ["a", "b", "c\"q"])
        // Keys sorted in the header, data laid out in the same order.
        #expect(st["a"]!.byteOffset < st["b"]!.byteOffset)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.safetensors"])
    }

    @Test func roundTripF16() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("half.safetensors").path
        let values: [Float] = [0, 1, -2.5, 65504, 1e-7, 70000, 0.1]
        try SafeTensorsWriter.write(["x": try Tensor(shape: [7], scalars: values)], as: .f16, to: path)
        let st = try SafeTensorsFile(path: path)
        #expect(st["x"]?.dtype == .f16)
        let back = try st["x"]!.float32().scalars
        #expect(back[0...3] == [0, 1, -2.5, 65504])
        #expect(back[4] == 0x1p-24 * 2)  // 1e-7 rounds to 2 subnormal steps
        #expect(back[5] == .infinity)
        #expect(back[6] == 0.0999755859375)
    }

    @Test func replacesAtomicallyAndLeavesNoTempFile() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        try SafeTensorsWriter.write(["w": try Tensor(shape: [2], scalars: [1, 2])], to: path)
        try SafeTensorsWriter.write(["w": try Tensor(shape: [3], scalars: [3, 4, 5])], to: path)
        #expect(try SafeTensorsFile(path: path)["w"]!.float32().scalars == [3, 4, 5])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["m.safetensors"])
    }

    @Test func failedWriteKeepsOldFile() throws {
        let dir = try makeTempDir()
        defer {
            chmod(dir.path, 0o755)
            try? FileManager.default.removeItem(at: dir)
        }
        let path = dir.appendingPathComponent("keep.safetensors").path
        try SafeTensorsWriter.write(["w": try Tensor(shape: [2], scalars: [1, 2])], to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        chmod(dir.path, 0o555)  // no new files in the folder
        let writable = access(dir.path, W_OK) == 0  // root ignores permissions
        if !writable {
            expectCheckpointError(["keep.safetensors: cannot create a temporary file"]) {
                try SafeTensorsWriter.write(["w": try Tensor(shape: [1], scalars: [9])], to: path)
            }
        }
        chmod(dir.path, 0o755)
        // A write that fails late (destination is a folder) must also leave nothing behind.
        let folderPath = dir.appendingPathComponent("sub.safetensors")
        try FileManager.default.createDirectory(at: folderPath, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(at: folderPath.appendingPathComponent("x"), withIntermediateDirectories: false)
        expectCheckpointError(["sub.safetensors: cannot replace the file"]) {
            try SafeTensorsWriter.write(["w": try Tensor(shape: [1], scalars: [9])], to: folderPath.path)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["keep.safetensors", "sub.safetensors"])
        // Unwritable location (missing folder): clear error, nothing created.
        expectCheckpointError(["nope.safetensors: cannot create a temporary file"]) {
            try SafeTensorsWriter.write([:], to: dir.appendingPathComponent("missing/nope.safetensors").path)
        }
    }

    @Test func refusesReservedName() {
        expectCheckpointError(["'__metadata__' is reserved"]) {
            try SafeTensorsWriter.write(["__metadata__": Tensor(zeros: [1])], to: "/tmp/never.safetensors")
        }
    }
}
