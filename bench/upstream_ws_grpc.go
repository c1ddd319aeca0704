// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/reflection"
)

// The gRPC and WebSocket bench upstreams (`bench upstream -grpc`, `-ws`).

// serveWS echoes every WebSocket message on any path (gorilla/websocket),
// and answers a plain GET with 200 so that readiness probes pass.
func serveWS(ln net.Listener) error {
	up := websocket.Upgrader{ReadBufferSize: 4 << 10, WriteBufferSize: 4 << 10}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		for {
			mt, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, m); err != nil {
				return
			}
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// benchTestService answers grpc.testing.TestService's UnaryCall with the
// requested response size and echoes FullDuplexCall one response per
// request; the other methods are unimplemented.
type benchTestService struct {
	testgrpc.UnimplementedTestServiceServer
}

func payload(n int32) *testgrpc.Payload {
	return &testgrpc.Payload{Body: make([]byte, max(n, 0))}
}

func (benchTestService) UnaryCall(_ context.Context, r *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: payload(r.GetResponseSize())}, nil
}

func (benchTestService) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	return &testgrpc.Empty{}, nil
}

func (benchTestService) FullDuplexCall(st testgrpc.TestService_FullDuplexCallServer) error {
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		size := int32(0)
		if ps := r.GetResponseParameters(); len(ps) > 0 {
			size = ps[0].GetSize()
		}
		if err := st.Send(&testgrpc.StreamingOutputCallResponse{Payload: payload(size)}); err != nil {
			return err
		}
	}
}

// serveGRPC is the gRPC upstream (h2c), with server reflection so that ghz
// needs no .proto file.
func serveGRPC(ln net.Listener) error {
	s := grpc.NewServer(grpc.MaxConcurrentStreams(1000))
	testgrpc.RegisterTestServiceServer(s, benchTestService{})
	reflection.Register(s)
	if err := s.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
