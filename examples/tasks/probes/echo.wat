;; Copies its stdin (up to 60 KiB) to stdout: the module a malicious host
;; would swap in to read a job's input (tests of the enclave's job binding).
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $r (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; iovec at 0: buffer at 1024, 60 KiB; bytes read land at 8.
    (i32.store (i32.const 0) (i32.const 1024)) (i32.store (i32.const 4) (i32.const 61440))
    (drop (call $r (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
