import Foundation
import Testing
@testable import Models

@Suite("Default model lookup")
struct DefaultModelTests {
    /// A folder with `demo-model/model_index.json`, removed afterwards.
    func withAssets(_ body: (String) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pd-assets-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("demo-model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: model.appendingPathComponent("model_index.json"))
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("demo-embeddings"), withIntermediateDirectories: true)
        try Data().write(to: dir.appendingPathComponent("demo-embeddings/alex.pt"))
        try body(dir.path)
    }

    @Test func environmentComesFirst() throws {
        try withAssets { dir in
            let found = try DefaultModel.assetsDirectory(environment: ["PAREIDOLIA_ASSETS": dir], executable: nil)
            #expect(found == dir)
        }
    }

    @Test func installedCopyBesideTheBinary() throws {
        try withAssets { dir in
            // BIN/../share/pareidolia/demo-model
            let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("pd-prefix-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: prefix) }
            try FileManager.default.createDirectory(at: prefix.appendingPathComponent("bin"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(at: prefix.appendingPathComponent("share"), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: prefix.appendingPathComponent("share/pareidolia").path, withDestinationPath: dir)
            let exe = prefix.appendingPathComponent("bin/pareidolia")
            let found = try DefaultModel.assetsDirectory(environment: [:], executable: exe)
            #expect(found == prefix.appendingPathComponent("share/pareidolia").path)
        }
    }

    @Test func theDefaultModelKnownHoweverSpelled() throws {
        try withAssets { dir in
            let env = ["PAREIDOLIA_ASSETS": dir]
            let link = FileManager.default.temporaryDirectory.appendingPathComponent("pd-link-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: link) }
            try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: dir + "/demo-model")
            for spelled in [dir + "/demo-model", dir + "/demo-model/", dir + "/demo-embeddings/../demo-model", link.path] {
                #expect(DefaultModel.isDefaultModel(spelled, environment: env, executable: nil), "\(spelled)")
            }
            #expect(!DefaultModel.isDefaultModel(dir, environment: env, executable: nil))
            #expect(!DefaultModel.isDefaultModel(dir + "/demo-embeddings", environment: env, executable: nil))
        }
    }

    @Test func missingEverywhereNamesEveryPlace() throws {
        let nowhere = "/nonexistent-\(UUID().uuidString)"
        let candidates = DefaultModel.candidates(environment: ["PAREIDOLIA_ASSETS": nowhere], executable: URL(fileURLWithPath: nowhere + "/bin/pareidolia"))
        #expect(candidates.count == 3)
        #expect(candidates[0].path == nowhere)
        // The build-time Assets/ may hold the model in this checkout; the message lists what was tried.
        if !DefaultModel.isModelFolder(candidates[2].path + "/demo-model") {
            do {
                _ = try DefaultModel.assetsDirectory(environment: ["PAREIDOLIA_ASSETS": nowhere], executable: URL(fileURLWithPath: nowhere + "/bin/pareidolia"))
                Issue.record("expected an error")
            } catch {
                let text = "\(error)"
                #expect(text.contains(nowhere) && text.contains("--model") && !text.contains("\n"))
            }
        }
    }
}
