// swift-tools-version: 6.0
import Foundation
import PackageDescription

/// The package root, for assets embedded at compile time (Sources/CAssets).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path

// Layers, lowest first. A target only depends on targets above it in this list.
//   COpenBLAS, CKernels, CCairo, CPango, CGif, CPNG  — C shims and micro-kernels
//   Tensors      — storage and the kernels SD needs
//   Checkpoints  — safetensors, safe pickle reader, key layouts, embedding files
//   Models       — tokenizer, CLIP text encoder, UNet, VAE
//   Imaging      — PNG files (libpng), atomic writes
//   Diffusion    — RNGs, samplers, guidance, prompt parsing and weighting, the pipeline
//   Probes       — instrumentation: observers at named sites, the trace they write
//   Analysis     — reading traces and embeddings: word maps, overlaps, nearest tokens
//   Reports      — figures drawn with Cairo/Pango, GIF animations, HTML and PDF reports
//   Workbench    — orchestration: a run of prompts × seeds (image, trace, CLIP), as commands use it
//   Server       — the live workbench in the browser (`pareidolia serve`): routes, a WebSocket, a run queue
//   pareidolia   — the command-line tool (thin)
let package = Package(
    name: "Pareidolia",
    products: [
        .executable(name: "pareidolia", targets: ["pareidolia"]),
        .executable(name: "pareidolia-bench", targets: ["pareidolia-bench"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "Checkpoints", targets: ["Checkpoints"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Diffusion", targets: ["Diffusion"]),
        .library(name: "Workbench", targets: ["Workbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
    ],
    targets: [
        // OpenBLAS is opened with dlopen, not linked: its core type (kernel family) is fixed by a
        // constructor when the library loads, so the loader must pick it (OPENBLAS_CORETYPE) first.
        // See Sources/COpenBLAS/openblas_loader.c.
        .target(
            name: "COpenBLAS",
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("dl")]
        ),
        // Hot loops outside BLAS (im2col, norms, softmax, activations, fp16/bf16 conversion), with
        // per-function ISA attributes chosen at run time.
        .target(
            name: "CKernels",
            cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])],
            linkerSettings: [.linkedLibrary("m")]
        ),
        .systemLibrary(
            name: "CCairo",
            pkgConfig: "cairo",
            providers: [.apt(["libcairo2-dev"])]
        ),
        // Text layout for figures: any prompt (accents, CJK, emoji) through fontconfig's fallbacks.
        .systemLibrary(
            name: "CPango",
            pkgConfig: "pangocairo",
            providers: [.apt(["libpango1.0-dev"])]
        ),
        // Animated GIFs (and giflib's colour quantizer).
        .systemLibrary(
            name: "CGif",
            pkgConfig: "libgif",
            providers: [.apt(["libgif-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Assets/ files embedded in the binary with .incbin.
        .target(
            name: "CAssets",
            cSettings: [.define("PD_ASSETS_DIR", to: packageRoot + "/Assets")]
        ),
        .systemLibrary(
            name: "CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]
        ),
        // A PNG's text chunks through libpng, its longjmp error reporting kept inside C.
        .target(name: "CPNGText", dependencies: ["CPNG"], cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "Tensors", dependencies: ["COpenBLAS", "CKernels"]),
        .target(name: "Checkpoints", dependencies: ["Tensors"]),
        .target(name: "Models", dependencies: ["Tensors", "Checkpoints", "CZlib", "CAssets"]),
        // Image files: PNG with text chunks, written atomically.
        .target(name: "Imaging", dependencies: ["Tensors", "CPNG", "CPNGText"]),
        .target(name: "Diffusion", dependencies: ["Tensors", "Checkpoints", "Models", "Imaging"]),
        .target(name: "Probes", dependencies: ["Tensors", "Checkpoints", "Models", "Imaging", "Diffusion"]),
        // Reading what the engine did: embeddings' neighbours (more analyses join it).
        .target(name: "Analysis", dependencies: ["Tensors", "Checkpoints", "Models", "Diffusion", "Probes"]),
        // What a person looks at: heat maps, charts, animations, the HTML page and the PDF.
        .target(name: "Reports", dependencies: ["Tensors", "Checkpoints", "Models", "Imaging", "Diffusion", "Probes", "Analysis",
                                                "CCairo", "CPango", "CGif"]),
        // Orchestration a command, a notebook or a server shares: a run of prompts × seeds.
        .target(name: "Workbench", dependencies: ["Tensors", "Models", "Imaging", "Diffusion", "Probes", "Analysis", "Reports"]),
        // The live workbench: Hummingbird routes and one WebSocket in front of a queue of Workbench runs;
        // the page (Assets/serve) is embedded in the binary by CAssets.
        .target(name: "Server", dependencies: [
            "Tensors", "Checkpoints", "Models", "Imaging", "Diffusion", "Probes", "Analysis", "Workbench", "CAssets",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
        ]),
        .executableTarget(
            name: "pareidolia",
            dependencies: [
                "Tensors", "Checkpoints", "Models", "Diffusion", "Imaging", "Probes", "Analysis", "Reports", "Workbench", "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "pareidolia-bench",
            dependencies: [
                "Tensors", "Checkpoints", "Models", "Diffusion", "Probes", "Analysis", "Reports", "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Shared test helpers: expectClose and the golden fixtures.
        .target(name: "TestSupport", dependencies: ["Tensors", "Checkpoints"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "Checkpoints", "TestSupport"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "Tensors"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Checkpoints", "Tensors", "TestSupport"]),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Models", "Checkpoints", "Tensors", "TestSupport"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Tensors", "CZlib"]),
        .testTarget(name: "AnalysisTests", dependencies: ["Analysis", "Checkpoints", "Diffusion", "Models", "Tensors", "TestSupport"]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Analysis", "Imaging", "Checkpoints", "Tensors", "Models", "Diffusion", "Probes", "TestSupport", "CGif", "CCairo"]),
        .testTarget(name: "WorkbenchTests", dependencies: ["Workbench", "Probes", "Diffusion", "Models", "Imaging", "Checkpoints", "Tensors", "TestSupport"]),
        .testTarget(name: "ServerTests", dependencies: [
            "Server", "Workbench", "Diffusion", "Models", "TestSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "ProbesTests", dependencies: ["Probes", "Diffusion", "Models", "Checkpoints", "Tensors", "TestSupport"]),
    ],
    // Kernels hand raw pointers to worker threads; Swift 5 mode keeps that free of Sendable noise.
    swiftLanguageModes: [.v5]
)

// Fuzz targets (Tools/fuzz.sh), declared only when PAREIDOLIA_FUZZ=1: they link libFuzzer
// (-sanitize=fuzzer), so a plain build or test must never see them.
if ProcessInfo.processInfo.environment["PAREIDOLIA_FUZZ"] == "1" {
    package.products.append(.executable(name: "pareidolia-fuzz", targets: ["pareidolia-fuzz"]))
    package.targets.append(.executableTarget(
        name: "pareidolia-fuzz",
        dependencies: ["Tensors", "Checkpoints", "Models", "Imaging", "Diffusion", "Probes", "Analysis", "Reports", "Workbench"]
    ))
}
