package lab

import (
	"bufio"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"sort"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// A chart is a line plot: a few series on linear axes starting at 0.
type chart struct {
	title, xlabel, ylabel string
	xmax, ymax            float64
	yfmt                  string // tick label format, e.g. "%.0f%%"
	yscale                float64
	series                []series
	vlines                []vline
	legendBottom          bool // legend at the bottom right instead of the top right
}

type series struct {
	name   string
	color  color.RGBA
	pts    [][2]float64
	dashed bool
}

type vline struct {
	x     float64
	label string
}

// Colours per system, readable on white and in grey scale.
var systemColors = map[string]color.RGBA{
	SystemAvalanche: {0x1f, 0x5f, 0xbf, 0xff},
	SystemAria2:     {0xe0, 0x7b, 0x10, 0xff},
	SystemHTTP:      {0x60, 0x60, 0x60, 0xff},
}

func colorOf(system string) color.RGBA {
	if c, ok := systemColors[system]; ok {
		return c
	}
	return color.RGBA{0x30, 0xa0, 0x30, 0xff}
}

const (
	plotW, plotH                    = 900, 540
	marginL, marginR, marginT, marB = 70, 20, 36, 50
)

// render draws the chart.
func (c *chart) render() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	x0, y0, x1, y1 := marginL, plotH-marB, plotW-marginR, marginT
	if c.xmax <= 0 {
		c.xmax = 1
	}
	if c.ymax <= 0 {
		c.ymax = 1
	}
	if c.yscale == 0 {
		c.yscale = 1
	}
	px := func(x float64) int { return x0 + int(math.Round(x/c.xmax*float64(x1-x0))) }
	py := func(y float64) int { return y0 - int(math.Round(y/c.ymax*float64(y0-y1))) }
	grid := color.RGBA{0xe4, 0xe4, 0xe4, 0xff}
	ink := color.RGBA{0x20, 0x20, 0x20, 0xff}
	for _, t := range ticks(c.xmax) {
		line(img, px(t), y0, px(t), y1, grid, 1, false)
		label(img, fmt.Sprintf("%g", t), px(t), y0+16, ink, 0)
	}
	for _, t := range ticks(c.ymax) {
		line(img, x0, py(t), x1, py(t), grid, 1, false)
		label(img, fmt.Sprintf(c.yfmt, t*c.yscale), x0-6, py(t)+4, ink, 1)
	}
	line(img, x0, y0, x1, y0, ink, 1, false)
	line(img, x0, y0, x0, y1, ink, 1, false)
	label(img, c.title, (x0+x1)/2, 14, ink, -1)
	label(img, c.xlabel, (x0+x1)/2, plotH-12, ink, -1)
	label(img, c.ylabel, 8, y1-6, ink, 2)
	for _, v := range c.vlines {
		if v.x > c.xmax {
			continue
		}
		line(img, px(v.x), y0, px(v.x), y1, color.RGBA{0xb0, 0x20, 0x20, 0xff}, 1, true)
		label(img, v.label, px(v.x)+4, y0-8, color.RGBA{0xb0, 0x20, 0x20, 0xff}, 2)
	}
	for _, s := range c.series {
		for j := 1; j < len(s.pts); j++ {
			a, b := s.pts[j-1], s.pts[j]
			if a[0] > c.xmax {
				break
			}
			line(img, px(a[0]), py(min(a[1], c.ymax)), px(min(b[0], c.xmax)), py(min(b[1], c.ymax)), s.color, 2, s.dashed)
		}
	}
	// Legend inside the axes, on a white box, right-aligned.
	wmax := 0
	for _, s := range c.series {
		wmax = max(wmax, (&font.Drawer{Face: basicfont.Face7x13}).MeasureString(s.name).Ceil())
	}
	lx := x1 - wmax - 52
	top := y1 + 8
	if c.legendBottom {
		top = y0 - 12 - 16*len(c.series)
	}
	if len(c.series) > 0 {
		draw.Draw(img, image.Rect(lx-4, top-2, x1-4, top+16*len(c.series)+4), image.White, image.Point{}, draw.Src)
	}
	for i, s := range c.series {
		ly := top + 14 + 16*i
		line(img, lx+4, ly-4, lx+28, ly-4, s.color, 2, s.dashed)
		label(img, s.name, lx+36, ly, ink, 2)
	}
	return img
}

// ticks returns about 5 round tick values from 0 to max.
func ticks(maxV float64) []float64 {
	step := math.Pow(10, math.Floor(math.Log10(maxV/5)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if maxV/(step*m) <= 6 {
			step *= m
			break
		}
	}
	var ts []float64
	for t := 0.0; t <= maxV*1.0001; t += step {
		ts = append(ts, math.Round(t*1e6)/1e6)
	}
	return ts
}

// line draws a line of the given width with Bresenham's algorithm,
// optionally dashed.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, width int, dashed bool) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for n := 0; ; n++ {
		if !dashed || (n/6)%2 == 0 {
			for i := 0; i < width; i++ {
				for j := 0; j < width; j++ {
					img.SetRGBA(x0+i, y0+j, c)
				}
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else if e2 <= dx {
			e += dx
			y0 += sy
		} else {
			e += dy + dx
			x0 += sx
			y0 += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func sign(x int) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// label draws text with its baseline at y: align -1 centres it on x, 0
// centres it too (tick labels), 1 ends it at x, 2 starts it at x.
func label(img *image.RGBA, s string, x, y int, c color.RGBA, align int) {
	face := basicfont.Face7x13
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face}
	w := d.MeasureString(s).Ceil()
	switch align {
	case -1, 0:
		x -= w / 2
	case 1:
		x -= w
	}
	d.Dot = fixed.P(x, y)
	d.DrawString(s)
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := png.Encode(w, img); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cdfPlot draws the share of leechers done against time, every repetition
// pooled, one line per system, with the lower bound.
func cdfPlot(sr *ScenarioReport) image.Image {
	c := &chart{
		title:  fmt.Sprintf("%s: completion time CDF (all repetitions pooled)", sr.Title),
		xlabel: "seconds since the leecher started", ylabel: "leechers done",
		ymax: 1, yfmt: "%.0f%%", yscale: 100,
		vlines: []vline{{sr.BoundSeconds, fmt.Sprintf("lower bound %.1f s", sr.BoundSeconds)}},
	}
	xmax := sr.BoundSeconds * 1.2
	limit := xLimit(sr)
	for _, name := range sr.Systems {
		var ts []float64
		total := 0
		for _, r := range sr.Runs {
			if r.System == name {
				ts = append(ts, r.Times...)
				total += r.Expected
			}
		}
		if total == 0 {
			continue
		}
		sort.Float64s(ts)
		s := series{name: name, color: colorOf(name), pts: [][2]float64{{0, 0}}}
		for i, t := range ts {
			s.pts = append(s.pts, [2]float64{t, float64(i) / float64(total)}, [2]float64{t, float64(i+1) / float64(total)})
			xmax = max(xmax, min(t, limit)*1.05)
		}
		if len(ts) < total {
			s.name += fmt.Sprintf(" (%d of %d never done)", total-len(ts), total)
		}
		if len(ts) > 0 && ts[len(ts)-1] > limit {
			s.name += fmt.Sprintf(" (off the chart: median %.0f s, last %.0f s)", median(ts), ts[len(ts)-1])
		}
		c.series = append(c.series, s)
	}
	for i := range c.series {
		last := c.series[i].pts[len(c.series[i].pts)-1]
		c.series[i].pts = append(c.series[i].pts, [2]float64{xmax, last[1]})
	}
	c.xmax = xmax
	c.legendBottom = true
	return c.render()
}

// xLimit returns where the x axis should stop so that the swarms stay
// readable: a little after the slowest swarm system's last event when plain
// HTTP takes more than twice as long, else no limit.
func xLimit(sr *ScenarioReport) float64 {
	var swarm, all float64
	for _, r := range sr.Runs {
		end := r.Duration
		for _, t := range r.Times {
			end = max(end, t)
		}
		all = max(all, end)
		if r.System != SystemHTTP {
			swarm = max(swarm, end)
		}
	}
	if swarm > 0 && all > 2*swarm {
		return swarm * 1.2
	}
	return math.Inf(1)
}

// uploadPlot draws, for each system's median run, the TCP payload all hosts
// put on their uplinks as a share of the sum of the caps (solid), and the
// seed's as a share of its cap (dashed).
func uploadPlot(sr *ScenarioReport) image.Image {
	c := &chart{
		title:  fmt.Sprintf("%s: uplink use, median run (solid: all hosts, dashed: seed)", sr.Title),
		xlabel: "seconds since t0", ylabel: "payload / nominal cap",
		ymax: 1.1, yfmt: "%.0f%%", yscale: 100,
		vlines: []vline{{sr.BoundSeconds, "lower bound"}},
	}
	xmax := sr.BoundSeconds * 1.2
	limit := xLimit(sr)
	for _, name := range sr.Systems {
		r := medianRun(sr, name)
		if r == nil || len(r.Timeline) == 0 {
			continue
		}
		caps := []float64{r.SeedUplinkMbit}
		total := r.SeedUplinkMbit
		for _, l := range r.Leecher {
			caps = append(caps, l.UplinkMbit)
			total += l.UplinkMbit
		}
		all := series{name: name + " all hosts", color: colorOf(name)}
		seed := series{name: name + " seed", color: colorOf(name), dashed: true}
		prev := 0.0
		for _, sec := range r.Timeline {
			var sum float64
			for _, u := range sec.Up {
				sum += u
			}
			mid := (prev + sec.T) / 2
			prev = sec.T
			if total > 0 {
				all.pts = append(all.pts, [2]float64{mid, sum / total})
			}
			if caps[0] > 0 && len(sec.Up) > 0 {
				seed.pts = append(seed.pts, [2]float64{mid, sec.Up[0] / caps[0]})
			}
			xmax = max(xmax, min(sec.T, limit))
		}
		if r.Duration > limit {
			all.name += fmt.Sprintf(" (until %.0f s)", r.Duration)
		}
		c.series = append(c.series, all, seed)
	}
	c.xmax = xmax
	return c.render()
}

// medianRun returns the run of a system whose all-done time is the median
// (unfinished runs count as slowest).
func medianRun(sr *ScenarioReport, name string) *RunResult {
	var runs []*RunResult
	for _, r := range sr.Runs {
		if r.System == name && len(r.Timeline) > 0 {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return nil
	}
	key := func(r *RunResult) float64 {
		if r.AllDone == nil {
			return inf
		}
		return *r.AllDone
	}
	sort.SliceStable(runs, func(i, j int) bool { return key(runs[i]) < key(runs[j]) })
	return runs[(len(runs)-1)/2]
}
