// SPDX-License-Identifier: MIT

package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

var percentiles = []struct {
	label string
	get   func(*phase) time.Duration
}{
	{"p50", func(p *phase) time.Duration { return p.Latency.P50 }},
	{"p90", func(p *phase) time.Duration { return p.Latency.P90 }},
	{"p99", func(p *phase) time.Duration { return p.Latency.P99 }},
	{"p99.9", func(p *phase) time.Duration { return p.Latency.P999 }},
}

// write draws the chart of r into path: SVG if it ends in .svg, else PNG.
// Systems that did not run (not installed, failed) are left out. No
// answered phase at all is an error: that is also what a results.json that
// no longer matches report gives.
func write(r *report, path string) error {
	var systems []*system
	answered := false
	for _, s := range r.Systems {
		if len(s.Reps) > 0 {
			systems = append(systems, s)
			answered = answered || s.hasResults()
		}
	}
	if !answered {
		return fmt.Errorf("no system has results in phases %v (is the results.json from e2ebench?)", phases)
	}
	plots := [][]*plot.Plot{
		{latency(systems, openBlocked, fmt.Sprintf("Blocked names at %.0f qps: latency", r.Options.Rate)),
			latency(systems, openForward, fmt.Sprintf("Forwarded names at %.0f qps: latency", r.Options.Rate))},
		{bars(systems, "Saturation (closed loop), queries/s", "qps", func(p *phase) float64 { return p.QPS }),
			bars(systems, "CPU of the system under test per query", "µs", func(p *phase) float64 {
				return float64(p.CPUPerQuery) / float64(time.Microsecond)
			})},
	}
	const w, h = 30 * vg.Centimeter, 22 * vg.Centimeter
	var c vg.CanvasWriterTo
	if strings.EqualFold(filepath.Ext(path), ".svg") {
		c = vgsvg.New(w, h)
	} else {
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(120))}
	}
	dc := draw.New(c.(vg.CanvasSizer))
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadX: vg.Centimeter, PadY: vg.Centimeter,
		PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2, PadLeft: vg.Centimeter / 2, PadRight: vg.Centimeter / 2}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		for j := range plots[i] {
			plots[i][j].Draw(canvases[i][j])
		}
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(fh); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// latency draws one line per system over the percentiles, log scale, µs.
func latency(systems []*system, ph, title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "µs (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	var labels []string
	for _, pc := range percentiles {
		labels = append(labels, pc.label)
	}
	p.NominalX(labels...)
	// Colours and dashes follow the system's position in the report, so a
	// system looks the same in both latency panels.
	for i, s := range systems {
		var pts plotter.XYs
		for x, pc := range percentiles {
			v := s.median(ph, func(p *phase) float64 { return float64(pc.get(p)) / float64(time.Microsecond) })
			if !math.IsNaN(v) && v > 0 {
				pts = append(pts, plotter.XY{X: float64(x), Y: v})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			continue
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		sc.Color = plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		p.Add(l, sc)
		p.Legend.Add(s.Name, l, sc)
	}
	return p
}

// bars draws blocked and forwarded bars per system.
func bars(systems []*system, title, unit string, fn func(*phase) float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	var names []string
	blocked := make(plotter.Values, len(systems))
	forward := make(plotter.Values, len(systems))
	for i, s := range systems {
		names = append(names, s.Name)
		blocked[i] = zeroNaN(s.median(closedBlocked, fn))
		forward[i] = zeroNaN(s.median(closedForward, fn))
	}
	w := vg.Points(9)
	for k, set := range []struct {
		label string
		v     plotter.Values
		c     color.Color
	}{{"blocked", blocked, plotutil.Color(0)}, {"forwarded", forward, plotutil.Color(1)}} {
		b, err := plotter.NewBarChart(set.v, w)
		if err != nil {
			continue
		}
		b.Color = set.c
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(2*k-1) / 2
		p.Add(b)
		p.Legend.Add(set.label, b)
	}
	// Headroom above the tallest bar for the legend.
	top := 0.0
	for i := range blocked {
		top = max(top, blocked[i], forward[i])
	}
	p.Y.Min, p.Y.Max = 0, top*1.2
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = math.Pi / 6
	p.X.Tick.Label.XAlign = draw.XRight
	return p
}

func zeroNaN(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
