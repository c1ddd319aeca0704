// SPDX-License-Identifier: GPL-3.0-only

//go:build grpcinterop

// Command grpcinterop serves grpc-go's interop TestService (the server of
// google.golang.org/grpc/interop/server, v1.85.0) on a loopback address,
// with the standard health service beside it, for the gRPC e2e tests. The
// upstream binary listens on every interface; the tests stay on loopback.
// Built with the tag and tools/grpc-interop.mod only:
//
//	go build -tags grpcinterop -modfile=tools/grpc-interop.mod ./tools/grpcinterop
package main

import (
	"flag"
	"log"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "the loopback address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, interop.NewTestServer(interop.NewTestServerOptions{}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	log.Printf("listening on %s", ln.Addr())
	if err := s.Serve(ln); err != nil {
		log.Fatal(err)
	}
}
