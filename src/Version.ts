// The release version, reported by --version and on traces.
export const VERSION = "0.1.0"
