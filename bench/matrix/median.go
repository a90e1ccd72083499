package matrix

import (
	"cmp"
	"reflect"
	"slices"
)

// Median returns the median of vs without changing vs: with an even count
// the lower middle, so that integers stay integers and every median is a
// figure that was measured. The bench drivers (bench/cmd/compare) take
// their medians here too, so that every report folds runs the same way.
// It returns the zero value for no values.
func Median[T cmp.Ordered](vs []T) T {
	if len(vs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// medianRow folds one case's runs into a row whose every number is the
// median of that number over the runs, each taken on its own (so the read
// p99 of the row may come from a different run than its write amp). The
// runs are kept in Row.Runs. With an even count the lower middle is taken,
// so integers stay integers and every figure is one that was measured.
func medianRow(runs []Row) Row {
	if len(runs) == 1 {
		return runs[0]
	}
	out := runs[0]
	ov := reflect.ValueOf(&out).Elem()
	for f := 0; f < ov.NumField(); f++ {
		fv := ov.Field(f)
		switch fv.Kind() {
		case reflect.Float64:
			vs := make([]float64, len(runs))
			for i := range runs {
				vs[i] = reflect.ValueOf(runs[i]).Field(f).Float()
			}
			fv.SetFloat(Median(vs))
		case reflect.Int, reflect.Int32, reflect.Int64:
			vs := make([]int64, len(runs))
			for i := range runs {
				vs[i] = reflect.ValueOf(runs[i]).Field(f).Int()
			}
			fv.SetInt(Median(vs))
		case reflect.Uint64:
			vs := make([]uint64, len(runs))
			for i := range runs {
				vs[i] = reflect.ValueOf(runs[i]).Field(f).Uint()
			}
			fv.SetUint(Median(vs))
		}
	}
	// Level sizes describe one LSM's shape: take the median-disk run's.
	bySize := slices.Clone(runs)
	slices.SortFunc(bySize, func(a, b Row) int {
		switch {
		case a.DiskBytes < b.DiskBytes:
			return -1
		case a.DiskBytes > b.DiskBytes:
			return 1
		}
		return 0
	})
	out.LevelBytes = bySize[(len(bySize)-1)/2].LevelBytes
	out.Runs = runs
	return out
}
