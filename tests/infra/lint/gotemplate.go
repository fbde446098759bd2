// Parses Go templates the way the docker CLI does for --format (text/template with docker's own
// functions added), printing each file's error; exits 1 when any fails. Run by tests/pieces/assets.test.ts
// over the *.tmpl files of components/pieces/assets, with their @NAME@ markers filled by the caller.
//
//	go run tests/infra/lint/gotemplate.go FILE...
package main

import (
	"fmt"
	"os"
	"strings"
	"text/template"
)

// The functions docker's templates add to Go's (github.com/docker/cli/templates); only their names
// matter to the parser.
var dockerFuncs = template.FuncMap{
	"json": func(any) string { return "" }, "split": strings.Split, "join": strings.Join,
	"title": func(string) string { return "" }, "lower": strings.ToLower, "upper": strings.ToUpper,
	"pad": func(string, int, int) string { return "" }, "truncate": func(string, int) string { return "" },
}

func main() {
	failed := false
	for _, file := range os.Args[1:] {
		text, err := os.ReadFile(file)
		if err == nil {
			_, err = template.New(file).Funcs(dockerFuncs).Parse(string(text))
		}
		if err != nil {
			fmt.Println(err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
