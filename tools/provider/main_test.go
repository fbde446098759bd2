package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil/rpcerror"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/structpb"
)

func inputs(over map[string]any) map[string]any {
	m := map[string]any{
		"connection": map[string]any{"kind": "local"},
		"what":       "the widget",
		"apply":      "echo apply",
		"probe":      "echo state=ok",
		"expected":   "state=ok",
		"remove":     "echo remove",
	}
	for k, v := range over {
		m[k] = v
	}
	return m
}

func outputs(over map[string]any) map[string]any {
	return inputs(merge(map[string]any{"observed": "state=ok"}, over))
}

func merge(a, b map[string]any) map[string]any {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func expectKeys(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("changed keys: got %q, want %q", got, want)
	}
}

func TestDriftFromWhatTheProgramSawThisRunEvenWhenTheLastRefreshSawItConverged(t *testing.T) {
	expectKeys(t, changedKeys(outputs(map[string]any{"observed": "state=ok"}), inputs(map[string]any{"observed": "state=broken"})), "observed")
}

func TestNoChangeWhenWhatTheProgramSawIsExpectedEvenWhenTheLastRefreshSawDrift(t *testing.T) {
	expectKeys(t, changedKeys(outputs(map[string]any{"observed": "state=broken"}), inputs(map[string]any{"observed": " state=ok\n"})))
}

func TestNoChangeWhenTheObservedStateIsExpectedAndNoScriptChanged(t *testing.T) {
	expectKeys(t, changedKeys(outputs(nil), inputs(nil)))
}

func TestTheLastObservedStateCountsWhenTheProgramDidNotLook(t *testing.T) {
	expectKeys(t, changedKeys(outputs(map[string]any{"observed": "state=edited"}), inputs(nil)), "observed")
	expectKeys(t, changedKeys(outputs(map[string]any{"observed": ""}), inputs(map[string]any{"observed": nil})), "observed")
}

func TestSurroundingWhitespaceIsIgnoredWhenComparingObservedAndExpected(t *testing.T) {
	expectKeys(t, changedKeys(outputs(map[string]any{"observed": "state=ok\n"}), inputs(map[string]any{"expected": "state=ok"})))
	old := outputs(map[string]any{"expected": "\nstate=ok\n"})
	expectKeys(t, changedKeys(old, inputs(map[string]any{"expected": "\nstate=ok\n"})))
}

func TestAChangedScriptIsAChange(t *testing.T) {
	expectKeys(t, changedKeys(outputs(nil), inputs(map[string]any{"apply": "echo apply v2"})), "apply")
	expectKeys(t, changedKeys(outputs(nil), inputs(map[string]any{"probe": "echo state=ok # v2"})), "probe")
	expectKeys(t, changedKeys(outputs(nil), inputs(map[string]any{"remove": "echo remove v2"})), "remove")
	expectKeys(t, changedKeys(outputs(map[string]any{"observed": "state=v2"}), inputs(map[string]any{"expected": "state=v2"})), "expected")
}

func TestAConnectionPointingElsewhereIsAChange(t *testing.T) {
	elsewhere := map[string]any{"kind": "ssh", "host": "h", "port": float64(22), "user": "root", "privateKeyPath": nil, "hostKey": nil}
	expectKeys(t, changedKeys(outputs(nil), inputs(map[string]any{"connection": elsewhere})), "connection")
}

func TestARotatedSecretEnvAloneIsNoChange(t *testing.T) {
	expectKeys(t, changedKeys(outputs(nil), inputs(map[string]any{"secretEnv": map[string]any{"HF_TOKEN": "hf_rotated"}})))
}

func TestANewDescriptionAloneIsNoChange(t *testing.T) {
	expectKeys(t, changedKeys(outputs(nil), inputs(map[string]any{"what": "the renamed widget"})))
}

func TestTheHelperIsFoundInTheNearestCheckoutAboveTheStartDirectory(t *testing.T) {
	root := t.TempDir()
	helper := filepath.Join(root, helperRel)
	if err := os.MkdirAll(filepath.Dir(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(helper, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	nested := filepath.Join(root, ".work", "a-stack")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, nested} {
		got, err := findHelper(dir)
		if err != nil || got != helper {
			t.Fatalf("findHelper(%s) = %q, %v; want %q", dir, got, err, helper)
		}
	}
}

func TestNoHelperAboveTheStartDirectoryIsAnErrorSayingWhatToRun(t *testing.T) {
	dir := t.TempDir()
	_, err := findHelper(dir)
	if err == nil || !strings.Contains(err.Error(), helperRel) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "npm run up") {
		t.Fatalf("findHelper(%s): %v", dir, err)
	}
}

func TestOnlyHostStateIsServed(t *testing.T) {
	if err := checkType("urn:pulumi:s::p::vllm-workstation:index:Workstation$hoststate:index:HostState::x"); err != nil {
		t.Fatal(err)
	}
	if err := checkType("urn:pulumi:s::p::hoststate:index:HostState::x"); err != nil {
		t.Fatal(err)
	}
	if err := checkType("urn:pulumi:s::p::hoststate:index:Other::x"); err == nil {
		t.Fatal("another type was accepted")
	}
}

// initFailure is what the engine reads from a create's or update's error (as its parseError does): the
// partial state in an ErrorResourceInitFailed detail, or nil when the error carries none.
func initFailure(t *testing.T, err error) *pulumirpc.ErrorResourceInitFailed {
	t.Helper()
	if err == nil {
		t.Fatal("the step succeeded")
	}
	rpcErr, ok := rpcerror.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range rpcErr.Details() {
		if f, ok := d.(*pulumirpc.ErrorResourceInitFailed); ok {
			return f
		}
	}
	return nil
}

func TestAStepThatFailedOnTheBoxBecomesAnInitFailureWithItsPartialStateAndNoSecretEnv(t *testing.T) {
	outs := outputs(map[string]any{"observed": "state=half"})
	in := inputs(map[string]any{"secretEnv": map[string]any{"TOKEN": "tok-secret-1"}})
	err := partialOr(&stepError{message: "set up the widget failed", partial: &partialState{ID: "the widget", Outs: outs}}, in)
	f := initFailure(t, err)
	if f == nil {
		t.Fatalf("no ErrorResourceInitFailed in %v", err)
	}
	if f.GetId() != "the widget" || !reflect.DeepEqual(f.GetReasons(), []string{"set up the widget failed"}) {
		t.Fatalf("id %q, reasons %q", f.GetId(), f.GetReasons())
	}
	if got := f.GetProperties().AsMap(); !reflect.DeepEqual(got, outs) {
		t.Fatalf("properties: got %v, want %v", got, outs)
	}
	ins := f.GetInputs().AsMap()
	if _, ok := ins["secretEnv"]; ok || ins["remove"] != "echo remove" {
		t.Fatalf("inputs: %v", ins)
	}
	if strings.Contains(fmt.Sprint(f), "tok-secret-1") || strings.Contains(err.Error(), "tok-secret-1") {
		t.Fatal("the secret env reached the error")
	}
}

func TestAFailureWithoutPartialStateStaysABareError(t *testing.T) {
	for _, err := range []error{&stepError{message: "cannot reach the workstation"}, errors.New("cannot start node")} {
		got := partialOr(err, inputs(nil))
		if got != err || initFailure(t, got) != nil {
			t.Fatalf("%v became %v", err, got)
		}
	}
}

// The real step (dist/components/host/provider.js, built by `tsc` before these tests run) on this
// machine: apply writes a file and fails, as the service step does when the health check fails after it
// wrote the unit.
func realServer(t *testing.T) *server {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	helper, err := findHelper(wd)
	if err != nil {
		t.Fatalf("the provider's Node half is not built (run tsc first): %v", err)
	}
	return &server{helper: helper, running: map[*exec.Cmd]struct{}{}}
}

func failingInputs(dir string) map[string]any {
	f := filepath.Join(dir, "made")
	return inputs(map[string]any{
		"apply":     fmt.Sprintf("echo half > '%s'\necho 'health check failed' >&2\nexit 3", f),
		"probe":     fmt.Sprintf("if [ -f '%s' ]; then echo state=$(cat '%s'); else echo state=missing; fi", f, f),
		"expected":  "state=ok",
		"remove":    fmt.Sprintf("rm -f '%s'", f),
		"secretEnv": map[string]any{"TOKEN": "tok-secret-2"},
	})
}

func TestCreateThatFailsAfterTouchingTheBoxReturnsWhatTheProbeSawAndTheRemoveScript(t *testing.T) {
	s := realServer(t)
	dir := t.TempDir()
	in := failingInputs(dir)
	props, err := structpb.NewStruct(in)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(context.Background(), &pulumirpc.CreateRequest{Urn: "urn:pulumi:s::p::hoststate:index:HostState::w", Properties: props})
	f := initFailure(t, err)
	if f == nil {
		t.Fatalf("a bare error: %v", err)
	}
	outs := f.GetProperties().AsMap()
	if f.GetId() != "the widget" || outs["observed"] != "state=half" || outs["remove"] != in["remove"] {
		t.Fatalf("id %q, outputs %v", f.GetId(), outs)
	}
	if _, ok := outs["secretEnv"]; ok {
		t.Fatal("secretEnv among the outputs")
	}
	if len(f.GetReasons()) != 1 || !strings.Contains(f.GetReasons()[0], "set up the widget failed on this machine (exit 3)") || !strings.Contains(f.GetReasons()[0], "health check failed") {
		t.Fatalf("reasons %q", f.GetReasons())
	}
}

func TestUpdateThatFailsAfterTouchingTheBoxReturnsTheNewInputsAsPartialState(t *testing.T) {
	s := realServer(t)
	dir := t.TempDir()
	news := failingInputs(dir)
	n, err := structpb.NewStruct(news)
	if err != nil {
		t.Fatal(err)
	}
	o, err := structpb.NewStruct(outputs(nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(context.Background(), &pulumirpc.UpdateRequest{Urn: "urn:pulumi:s::p::hoststate:index:HostState::w", Id: "the widget", Olds: o, News: n})
	f := initFailure(t, err)
	if f == nil {
		t.Fatalf("a bare error: %v", err)
	}
	outs := f.GetProperties().AsMap()
	if f.GetId() != "the widget" || outs["observed"] != "state=half" || outs["apply"] != news["apply"] || outs["remove"] != news["remove"] {
		t.Fatalf("id %q, outputs %v", f.GetId(), outs)
	}
}

func TestCreateThatCannotReachTheBoxRecordsNothing(t *testing.T) {
	s := realServer(t)
	unreachable := map[string]any{"kind": "ssh", "host": "127.0.0.1", "port": float64(1), "user": "root", "privateKeyPath": nil, "hostKey": nil}
	props, err := structpb.NewStruct(inputs(map[string]any{"connection": unreachable}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(context.Background(), &pulumirpc.CreateRequest{Urn: "urn:pulumi:s::p::hoststate:index:HostState::w", Properties: props})
	if f := initFailure(t, err); f != nil || !strings.Contains(err.Error(), "cannot reach the workstation") {
		t.Fatalf("%v (partial state %v)", err, f)
	}
}
