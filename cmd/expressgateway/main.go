// SPDX-License-Identifier: GPL-3.0-only

// Command expressgateway is the ExpressGateway L4/L7 load balancer.
//
//	expressgateway run [--config FILE]     serve (embedded default config without --config)
//	expressgateway validate --config FILE  check a config file, print every problem
//	expressgateway version                 print the version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/expressgateway/expressgateway/conf"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	_, _ = fmt.Fprintln(w, `usage:
  expressgateway run [--config FILE]      serve; without --config the embedded default config
  expressgateway validate --config FILE   check FILE; exit 1 and list every problem when invalid
  expressgateway version                  print the version`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "run":
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfg := fs.String("config", "", "config file (TOML); the embedded default when empty")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if err := serve(*cfg, stderr); err != nil {
			_, _ = fmt.Fprintln(stderr, "expressgateway:", err)
			return 1
		}
		return 0
	case "validate":
		fs := flag.NewFlagSet("validate", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfg := fs.String("config", "", "config file (TOML) to check")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if *cfg == "" {
			_, _ = fmt.Fprintln(stderr, "validate: --config FILE is required")
			return 2
		}
		return validate(*cfg, stdout, stderr)
	case "version", "--version", "-v":
		if _, err := fmt.Fprintf(stdout, "expressgateway %s\n", version); err != nil {
			return 1
		}
		return 0
	case "help", "--help", "-h":
		usage(stdout)
		return 0
	}
	_, _ = fmt.Fprintf(stderr, "unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func validate(path string, stdout, stderr io.Writer) int {
	_, err := loadConfig(path)
	if err == nil {
		if _, err := fmt.Fprintf(stdout, "%s: ok\n", path); err != nil {
			return 1
		}
		return 0
	}
	var ve *conf.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			_, _ = fmt.Fprintln(stderr, p.String())
		}
		return 1
	}
	_, _ = fmt.Fprintf(stderr, "%s: %v\n", path, err)
	return 1
}
