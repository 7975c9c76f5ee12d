package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// UpdateDoc writes each scenario of rep into the Markdown file at path,
// between the lines "<!-- lab:NAME -->" and "<!-- /lab:NAME -->", replacing
// what an earlier run put there and leaving the rest of the file alone, so
// that hand-written notes survive and scenarios can be rerun one at a time.
// Scenarios the file lacks are appended; a missing file is created.
func UpdateDoc(path string, rep *Report) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = []byte("# Benchmarks\n"), nil
	}
	if err != nil {
		return err
	}
	doc := string(b)
	for _, sr := range rep.Scenarios {
		var sec strings.Builder
		one := *rep
		one.Scenarios = []*ScenarioReport{sr}
		one.WriteMarkdown(&sec)
		block := fmt.Sprintf("<!-- lab:%s -->\n%s<!-- /lab:%s -->", sr.Name, strings.TrimPrefix(sec.String(), "\n"), sr.Name)
		doc = replaceBlock(doc, sr.Name, block)
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

// replaceBlock replaces the marked block of a scenario, or appends it.
func replaceBlock(doc, name, block string) string {
	begin, end := "<!-- lab:"+name+" -->", "<!-- /lab:"+name+" -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		var b bytes.Buffer
		b.WriteString(strings.TrimRight(doc, "\n"))
		b.WriteString("\n\n")
		b.WriteString(block)
		b.WriteString("\n")
		return b.String()
	}
	return doc[:i] + block + doc[j+len(end):]
}
