package sim

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// kernelDirs are the packages that must stay deterministic (DESIGN.md §3).
var kernelDirs = []string{"../core", "../netsim", ".", "../checker", "../scenarios"}

// forbiddenImports may not appear in kernel code at all.
var forbiddenImports = map[string]string{
	"math/rand":    "global randomness: use core/rng",
	"math/rand/v2": "global randomness: use core/rng",
	"net":          "sockets",
	"net/http":     "sockets",
	"os":           "OS files: use vfs.FS",
	"os/exec":      "processes",
	"syscall":      "OS access",
	"unsafe":       "unsafe memory access",
}

// allowedImports lists the one file that may use an otherwise forbidden
// package, and why.
var allowedImports = map[string]string{
	"crypto/rand": "run.go", // replaced by a seeded reader for the run
}

// forbiddenTimeCalls read or wait on the wall clock.
var forbiddenTimeCalls = map[string]bool{
	"Now": true, "Sleep": true, "After": true, "AfterFunc": true, "Tick": true,
	"NewTimer": true, "NewTicker": true, "Since": true, "Until": true,
}

func TestKernelPackagesStayDeterministic(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	for _, dir := range kernelDirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != dir && d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			// Generated protobuf code (*.pb.go) uses unsafe for its own tables.
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasSuffix(path, ".pb.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			checked++
			checkFile(t, fset, path, f)
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", dir, err)
		}
	}
	if checked < 20 {
		t.Fatalf("only %d kernel files checked; the walk is broken", checked)
	}
}

func checkFile(t *testing.T, fset *token.FileSet, path string, f *ast.File) {
	timeName := ""
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if why, bad := forbiddenImports[p]; bad {
			t.Errorf("%s imports %q (%s)", path, p, why)
		}
		if file, ok := allowedImports[p]; ok && filepath.Base(path) != file {
			t.Errorf("%s imports %q, allowed only in %s", path, p, file)
		}
		if p == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.GoStmt:
			t.Errorf("%s: starts a goroutine", fset.Position(x.Pos()))
		case *ast.SelectStmt:
			t.Errorf("%s: select statement", fset.Position(x.Pos()))
		case *ast.ChanType:
			t.Errorf("%s: channel type", fset.Position(x.Pos()))
		case *ast.SelectorExpr:
			if id, ok := x.X.(*ast.Ident); ok && timeName != "" && id.Name == timeName && forbiddenTimeCalls[x.Sel.Name] {
				t.Errorf("%s: time.%s reads or waits on the wall clock", fset.Position(x.Pos()), x.Sel.Name)
			}
		}
		return true
	})
}
