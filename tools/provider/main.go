// pulumi-resource-hoststate: the provider of HostState (components/host/hostState.ts), a piece of
// workstation state that the engine converges, reads back and removes.
//
// Why a native provider: the engine starts a resource's provider at every `up` and `preview`, and the
// Node dynamic provider took about 0.65 s of each to start (Node, then all of @pulumi/pulumi) before the
// first diff; a preview of a converged box does nothing else with it. This one starts in milliseconds
// and answers Check and Diff itself. The steps that touch the box (Create, Read, Update, Delete) run
// components/host/provider.js in Node, the same code the program uses to reach the box (host/connection.ts),
// one short process per step, so there is one implementation of SSH, progress and error messages.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil/rpcerror"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Version is what GetPluginInfo reports; scripts/toolchain.sh builds the plugin with it.
var Version = "0.1.0"

// The type token of the one resource this provider serves.
const hostStateType = "hoststate:index:HostState"

// The program's compiled half, found from the directory the engine starts providers in (the project
// directory, or a stack directory nested in it, as the tests make).
const helperRel = "dist/components/host/provider.js"

// Inputs whose change means the piece must be converged again. secretEnv is not among them on purpose:
// a rotated token must not re-download a model; `what` is only words for messages.
var tracked = []string{"connection", "apply", "probe", "expected", "remove"}

// changedKeys is the diff: the tracked inputs that differ, and "observed" when the piece drifted, that
// is, when what the probe printed differs from what it should print. What the program saw this run wins
// over what the last converge or refresh saw (a program that does not look, or state from before).
func changedKeys(olds, news map[string]any) []string {
	var keys []string
	for _, k := range tracked {
		if !reflect.DeepEqual(olds[k], news[k]) {
			keys = append(keys, k)
		}
	}
	observed, ok := news["observed"].(string)
	if !ok {
		observed, _ = olds["observed"].(string)
	}
	expected, _ := news["expected"].(string)
	if strings.TrimSpace(observed) != strings.TrimSpace(expected) {
		keys = append(keys, "observed")
	}
	return keys
}

// findHelper walks up from dir to the nearest checkout holding the compiled provider half.
func findHelper(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, helperRel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("cannot find %s in %s or any directory above it: run the stack from the "+
				"vllm-workstation checkout (npm run up, preview or destroy), which builds it", helperRel, dir)
		}
	}
}

type server struct {
	pulumirpc.UnimplementedResourceProviderServer
	host   *provider.HostClient
	helper string

	mu      sync.Mutex
	running map[*exec.Cmd]struct{}
}

// helperReply is what host/provider.js prints on stdout: a result, or the error to report, with
// the partial state when the step failed after its script ran on the box.
type helperReply struct {
	Result  map[string]any `json:"result"`
	Error   *string        `json:"error"`
	Partial *partialState  `json:"partial"`
}

// partialState is what a failed create or update left on the box, as the resource's state: its id, and
// outputs that hold the remove script and what the probe saw after the failure.
type partialState struct {
	ID   string         `json:"id"`
	Outs map[string]any `json:"outs"`
}

// stepError is a step's own failure; partial is set when the step touched the box before it failed.
type stepError struct {
	message string
	partial *partialState
}

func (e *stepError) Error() string { return e.message }

// initFailed is the error the engine reads as "created, but failed to initialize" (Pulumi's partial
// state): it keeps the resource in the state with these outputs and the message as its init error, so
// the next `up` updates it and `destroy` deletes it (runs its remove), where a bare error would leave
// what the step made on the box with nothing in the state that knows of it. The inputs go without
// secretEnv; the engine keeps the program's own inputs (secretEnv as a secret) in the state anyway.
func initFailed(e *stepError, inputs map[string]any) error {
	outs, err := structOf(e.partial.Outs)
	if err != nil {
		return fmt.Errorf("%s (and its partial state could not be recorded: %v)", e.message, err)
	}
	in := map[string]any{}
	for k, v := range inputs {
		if k != "secretEnv" {
			in[k] = v
		}
	}
	ins, err := structOf(in)
	if err != nil {
		return fmt.Errorf("%s (and its partial state could not be recorded: %v)", e.message, err)
	}
	return rpcerror.WithDetails(rpcerror.New(codes.Unknown, e.message), &pulumirpc.ErrorResourceInitFailed{
		Id:         e.partial.ID,
		Properties: outs,
		Reasons:    []string{e.message},
		Inputs:     ins,
	})
}

// partialOr is err as the engine must see it from a create or update: a step that failed after it
// touched the box becomes an init failure carrying its partial state; anything else stays as it is.
func partialOr(err error, inputs map[string]any) error {
	var se *stepError
	if errors.As(err, &se) && se.partial != nil && se.partial.ID != "" {
		return initFailed(se, inputs)
	}
	return err
}

// call runs one step in Node: the request as JSON on stdin (it can hold a token, which must not show in
// a process list), the reply as JSON on stdout. Each line on its stderr (the progress of long steps,
// already throttled) goes to the engine as a status message on the resource, which the `pulumi up`
// output shows beside it as it happens; not repeated among the diagnostics at the end (a failed step's
// error carries the tail of its output).
func (s *server) call(ctx context.Context, urn, op string, req map[string]any) (map[string]any, error) {
	if s.helper == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if s.helper, err = findHelper(wd); err != nil {
			return nil, err
		}
	}
	in, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "node", s.helper, op)
	cmd.Stdin = bytes.NewReader(in)
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	// Its own process group, so a cancel reaches the ssh it started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start node to run %s: %w", s.helper, err)
	}
	s.track(cmd, true)
	s.relay(ctx, urn, stderr)
	runErr := cmd.Wait()
	s.track(cmd, false)
	var reply helperReply
	if err := json.Unmarshal(out.Bytes(), &reply); err != nil {
		return nil, fmt.Errorf("%s %s gave no reply (%v); its output: %q", s.helper, op, runErr, out.String())
	}
	if reply.Error != nil {
		return nil, &stepError{message: *reply.Error, partial: reply.Partial}
	}
	if runErr != nil {
		return nil, fmt.Errorf("%s %s: %w", s.helper, op, runErr)
	}
	return reply.Result, nil
}

// relay shows every line of r as a status message on urn, until r ends.
func (s *server) relay(ctx context.Context, urn string, r io.Reader) {
	lines := bufio.NewScanner(r)
	lines.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for lines.Scan() {
		line := lines.Text()
		if s.host == nil || s.host.LogStatus(ctx, diag.Info, resource.URN(urn), line) != nil {
			fmt.Fprintln(os.Stderr, line)
		}
	}
}

func (s *server) track(cmd *exec.Cmd, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.running[cmd] = struct{}{}
	} else {
		delete(s.running, cmd)
	}
}

func checkType(urn string) error {
	if !strings.Contains(urn, "::"+hostStateType+"::") && !strings.Contains(urn, "$"+hostStateType+"::") {
		return fmt.Errorf("%s: this provider serves only %s", urn, hostStateType)
	}
	return nil
}

// structOf is a step's reply field as the engine takes it (an absent or odd field: empty).
func structOf(v any) (*structpb.Struct, error) { return structpb.NewStruct(asMap(v)) }

func (s *server) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

// The provider has no config of its own; secrets reach it as plain values (the engine keeps them secret
// in state, and marks an output secret when the input of the same name was).
func (s *server) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (s *server) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (s *server) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{}, nil
}

func (s *server) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (s *server) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	keys := changedKeys(req.GetOlds().AsMap(), req.GetNews().AsMap())
	if len(keys) == 0 {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
	}
	// Never a replacement: every script is safe to run again, and a replace would remove the piece
	// (the model, the venv) after making it again.
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_SOME, Diffs: keys}, nil
}

func (s *server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	inputs := req.GetProperties().AsMap()
	res, err := s.call(ctx, req.GetUrn(), "create", map[string]any{"inputs": inputs})
	if err != nil {
		return nil, partialOr(err, inputs)
	}
	outs, err := structOf(res["outs"])
	if err != nil {
		return nil, err
	}
	id, _ := res["id"].(string)
	return &pulumirpc.CreateResponse{Id: id, Properties: outs}, nil
}

func (s *server) Read(ctx context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	res, err := s.call(ctx, req.GetUrn(), "read", map[string]any{"id": req.GetId(), "props": req.GetProperties().AsMap()})
	if err != nil {
		return nil, err
	}
	props, err := structOf(res["props"])
	if err != nil {
		return nil, err
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: props, Inputs: req.GetInputs()}, nil
}

func (s *server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	news := req.GetNews().AsMap()
	res, err := s.call(ctx, req.GetUrn(), "update", map[string]any{"id": req.GetId(), "olds": req.GetOlds().AsMap(), "news": news})
	if err != nil {
		return nil, partialOr(err, news)
	}
	outs, err := structOf(res["outs"])
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: outs}, nil
}

func (s *server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if _, err := s.call(ctx, req.GetUrn(), "delete", map[string]any{"id": req.GetId(), "props": req.GetProperties().AsMap()}); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Cancel: the engine is stopping (Ctrl-C). Stop the steps in flight, and the ssh each started.
func (s *server) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for cmd := range s.running {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	return &emptypb.Empty{}, nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	if m == nil {
		return map[string]any{}
	}
	return m
}

func main() {
	err := provider.Main("hoststate", func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &server{host: host, running: map[*exec.Cmd]struct{}{}}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
