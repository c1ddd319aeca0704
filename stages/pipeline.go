// SPDX-License-Identifier: GPL-3.0-only

package stages

// Order is the pipeline, declared in one place: guard → route → pick → forward.
func Order(g *Guard, r RouteStage, p *Pick, f *Forward) []Stage {
	return []Stage{g, r, p, f}
}

// Pipeline runs the stages over a batch of exchanges. One Pipeline belongs to
// one event loop: its rings are fixed-size and preallocated, filled by Submit
// and drained by Drain in the same callback, so nothing hops goroutines.
type Pipeline struct {
	stages []Stage
	rings  []*Ring // rings[i] feeds stages[i]
	// Done is called for every exchange that a stage answered locally
	// (Respond). The engine writes the response.
	Done func(x *Exchange)
	// Full counts exchanges refused because a ring between stages was full.
	Full func(stage string)
}

// NewPipeline builds a pipeline with one ring of ringSize before each stage.
func NewPipeline(stages []Stage, ringSize int) *Pipeline {
	p := &Pipeline{stages: stages, rings: make([]*Ring, len(stages))}
	for i := range p.rings {
		p.rings[i] = NewRing(ringSize)
	}
	return p
}

// Submit queues x at the head of the pipeline. It reports false when the
// first ring is full; the caller answers 503 with Retry-After.
func (p *Pipeline) Submit(x *Exchange) bool {
	return p.rings[0].Push(x)
}

// Drain runs every queued exchange through the remaining stages.
func (p *Pipeline) Drain() {
	for i, st := range p.stages {
		r := p.rings[i]
		for x := r.Pop(); x != nil; x = r.Pop() {
			switch st.Process(x) {
			case Continue:
				if i+1 == len(p.stages) {
					continue // the last stage let it fall through: nothing to do
				}
				if !p.rings[i+1].Push(x) {
					if p.Full != nil {
						p.Full(p.stages[i+1].Name())
					}
					x.Status, x.Reason, x.RetryAfter = 503, "ring_full", true
					p.Done(x)
				}
			case Respond:
				p.Done(x)
			case Handled:
			}
		}
	}
}

// SubmitAndDrain is Submit followed by Drain; false when the head ring is full.
func (p *Pipeline) SubmitAndDrain(x *Exchange) bool {
	if !p.Submit(x) {
		return false
	}
	p.Drain()
	return true
}
