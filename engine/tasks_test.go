// SPDX-License-Identifier: GPL-3.0-only

package engine

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoopTasksRecoverPanics: gnet runs a task queued with Execute on its
// poller goroutine with no recover of its own, so a panic in one ends the
// process (it once did: a response pump's hand-back dereferenced an
// exchange its client's close had released). Every task literal in the
// engine (gnet.RunnableFunc(func ...)) must start with a deferred recover (among its leading defers);
// lp.exec is the one that does it for the others. Named runnables
// (sweeps, the HTTP/2 flush, the TLS delivery) recover per connection
// inside.
func TestLoopTasksRecoverPanics(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "RunnableFunc" {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "gnet" {
				return true
			}
			lit, ok := call.Args[0].(*ast.FuncLit)
			if !ok {
				return true
			}
			checked++
			if len(lit.Body.List) == 0 {
				return true
			}
			guarded := false
			for _, st := range lit.Body.List {
				d, ok := st.(*ast.DeferStmt)
				if !ok {
					break
				}
				guarded = guarded || recovers(d.Call)
			}
			if !guarded {
				t.Errorf("%s: a loop task that does not start with a deferred recover (use lp.exec)", fset.Position(lit.Pos()))
			}
			return true
		})
	}
	if checked < 3 {
		t.Fatalf("found %d task literals: the check no longer sees them", checked)
	}
}

// recovers: call is e.recoverConn(...), or a literal that calls recover().
func recovers(call *ast.CallExpr) bool {
	if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "recoverConn" {
		return true
	}
	lit, ok := call.Fun.(*ast.FuncLit)
	if !ok {
		return false
	}
	found := false
	ast.Inspect(lit, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "recover" {
				found = true
			}
		}
		return !found
	})
	return found
}
