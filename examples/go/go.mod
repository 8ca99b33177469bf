module github.com/libbill/libbill/examples/go

go 1.24

require github.com/libbill/libbill/bindings/go v0.0.0

replace github.com/libbill/libbill/bindings/go => ../../bindings/go
