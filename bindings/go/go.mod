module github.com/libbill/libbill/bindings/go

go 1.24
