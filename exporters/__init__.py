"""Exporters: graph rewrites, one module per target, runtime parity checks, the Core ML interpreter."""
