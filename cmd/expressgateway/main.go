// SPDX-License-Identifier: GPL-3.0-only

// Command expressgateway is the ExpressGateway L4/L7 load balancer.
//
//	expressgateway run [--config FILE]     serve (embedded default config without --config)
//	expressgateway validate --config FILE  check a config file, print every problem
//	expressgateway config push --config FILE  validate FILE and store it in etcd (HA)
//	expressgateway version                 print the version
package main

import (
	"context"
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
  expressgateway config push --config FILE
                                          validate FILE and store it in the etcd its [control_plane] names,
                                          for every node of the group; exit 1 and list every problem when invalid
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
	case "config":
		if len(args) < 2 || args[1] != "push" {
			_, _ = fmt.Fprintln(stderr, "config: want `config push --config FILE`")
			return 2
		}
		fs := flag.NewFlagSet("config push", flag.ContinueOnError)
		fs.SetOutput(stderr)
		cfg := fs.String("config", "", "config file (TOML) to validate and store")
		if err := fs.Parse(args[2:]); err != nil {
			return 2
		}
		if *cfg == "" {
			_, _ = fmt.Fprintln(stderr, "config push: --config FILE is required")
			return 2
		}
		return push(*cfg, stdout, stderr)
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
	ok := "ok"
	data, err := os.ReadFile(path)
	if err == nil {
		// A node file (backend "etcd") is checked as one; anything else,
		// a bad [control_plane] included, as a whole config.
		if cp, _ := conf.ReadControlPlane(path, data); cp.Backend == conf.BackendEtcd {
			_, err = conf.CheckNode(path, data)
			ok = "ok (a node file: the rest of the config is the document in etcd)"
		} else {
			_, err = conf.Parse(path, data)
		}
	}
	return report(path, ok, err, stdout, stderr)
}

// push validates the whole file at path and stores it in the etcd its
// own [control_plane] names, at PREFIX/config, where every node of the
// group watches it. A file with any problem is not stored.
func push(path string, stdout, stderr io.Writer) int {
	snap, data, err := loadConfigData(path)
	if err != nil {
		return report(path, "", err, stdout, stderr)
	}
	cp := snap.Config.ControlPlane
	if cp.Backend != conf.BackendEtcd {
		_, _ = fmt.Fprintf(stderr, "%s: control_plane.backend: is %q; config push stores the file in etcd: set backend = \"etcd\" and endpoints\n", path, cp.Backend)
		return 1
	}
	st, err := conf.OpenEtcd(cp)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 1
	}
	defer func() { _ = st.Close() }()
	rev, err := st.SaveRevision(context.Background(), data)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "%s: not pushed: %v\n", path, err)
		return 1
	}
	if _, err := fmt.Fprintf(stdout, "%s: pushed to %s (revision %d)\n", path, st.Name(), rev); err != nil {
		return 1
	}
	return 0
}

// report prints ok, or every problem of err in the validate format, and
// returns the exit code.
func report(path, ok string, err error, stdout, stderr io.Writer) int {
	if err == nil {
		if _, err := fmt.Fprintf(stdout, "%s: %s\n", path, ok); err != nil {
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
