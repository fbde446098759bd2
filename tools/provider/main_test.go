package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
