import ArgumentParser
struct Inspect: ParsableCommand { func run() throws {} }
