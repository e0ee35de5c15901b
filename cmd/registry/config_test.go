package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"

	cos "github.com/registry-cos/cos"
)

// TestExampleConfigurationsAreValid parses the shipped example
// configurations and the full example of docs/storage-driver.md with the
// upstream parser and the driver's parameter parser, so the examples cannot
// drift from the parameters the driver accepts.
func TestExampleConfigurationsAreValid(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "storage-driver.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	if i := strings.Index(section, "## A full example"); i >= 0 {
		section = section[i:]
	} else {
		t.Fatal("docs/storage-driver.md has no \"A full example\" section")
	}
	block := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatal("docs/storage-driver.md: no yaml block in \"A full example\"")
	}
	configCOS, err := os.ReadFile("config-cos.yml")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, yaml string
		wantParams []string
	}{
		{"config-cos.yml", string(configCOS), []string{"bucket", "region", "secretid", "secretkey", "chunksize"}},
		{"docs/storage-driver.md full example", block[1], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			config, err := configuration.Parse(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatalf("configuration.Parse: %v", err)
			}
			if got := config.Storage.Type(); got != cos.DriverName {
				t.Fatalf("storage driver %q, want cos", got)
			}
			params := config.Storage.Parameters()
			for _, name := range tc.wantParams {
				if _, ok := params[name]; !ok {
					t.Errorf("parameter %s is missing", name)
				}
			}
			if _, err := cos.ParseParameters(params); err != nil {
				t.Fatalf("cos.ParseParameters: %v", err)
			}
		})
	}

	// The full example in the docs shows every parameter the driver accepts.
	t.Run("every parameter documented", func(t *testing.T) {
		config, err := configuration.Parse(strings.NewReader(block[1]))
		if err != nil {
			t.Fatal(err)
		}
		documented := config.Storage.Parameters()
		all := cos.ParameterNames()
		for _, name := range all {
			if _, ok := documented[name]; !ok {
				t.Errorf("docs/storage-driver.md's full example lacks parameter %s", name)
			}
			if !strings.Contains(string(doc), "| `"+name+"` |") {
				t.Errorf("docs/storage-driver.md has no table row for parameter %s", name)
			}
			if !strings.Contains(string(configCOS), name+":") {
				t.Errorf("config-cos.yml does not show parameter %s", name)
			}
		}
	})
}
