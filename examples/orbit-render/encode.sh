#!/usr/bin/env bash
# Encode the rendered frames into a looping GIF and an MP4 with ffmpeg.
#
#   frame_start=1 frame_end=24 fps=12 bash encode.sh out/frames out/orbit
#
# - FRAMES_DIR holds frame_####.png for every frame from $frame_start to $frame_end (the render
#   tasks wrote them); a missing frame is an error that names it.
# - Writes OUT.gif (palettegen + paletteuse: one palette for the whole clip, loops forever),
#   OUT.mp4 (H.264 with libx264 when this ffmpeg has it, else MPEG-4 part 2; yuv420p, so an odd
#   size is padded by one pixel) and OUT.json (frames, fps, size, codec, bytes), then checks with
#   ffprobe that both videos have every frame.
# - frame_start, frame_end and fps come from the environment (published by the configure step
#   and the pipeline's context); FRAMES_DIR and OUT are written literally in pipeline.yaml.
# Exit status: 2 bad parameters or missing frames, 4 ffmpeg or ffprobe failed or disagree.
set -euo pipefail

die() {
  printf 'orbit-render encode: error: %s\n' "$1" >&2
  exit "$2"
}

[ "$#" -eq 2 ] || die "usage: encode.sh FRAMES_DIR OUT (writes OUT.gif, OUT.mp4, OUT.json)" 2
frames_dir=$1
out=$2
# OUT is written into JSON below: keep it to plain path characters.
[[ "$out" =~ ^[A-Za-z0-9_./-]+$ ]] || die "OUT must be a plain path ([A-Za-z0-9_./-]), got '$out'" 2

whole() { # NAME VALUE LO HI: a whole number in range, else exit 2
  [[ "$2" =~ ^[0-9]{1,9}$ ]] || die "'$1' must be a whole number, got '$2'" 2
  (( 10#$2 >= $3 && 10#$2 <= $4 )) || die "'$1' must be between $3 and $4, got $2" 2
}
whole frame_start "${frame_start-}" 1 1048574
whole frame_end "${frame_end-}" 1 1048574
whole fps "${fps-}" 1 120
start=$((10#$frame_start))
end=$((10#$frame_end))
rate=$((10#$fps))
(( end >= start )) || die "frame_end ($end) is before frame_start ($start)" 2
count=$((end - start + 1))

missing=()
for ((f = start; f <= end; f++)); do
  printf -v file '%s/frame_%04d.png' "$frames_dir" "$f"
  [ -f "$file" ] || missing+=("$file")
done
if [ "${#missing[@]}" -gt 0 ]; then
  more=""
  [ "${#missing[@]}" -le 10 ] || more=" ..."
  die "${#missing[@]} of $count frame(s) missing: ${missing[*]:0:10}$more" 2
fi

mkdir -p -- "$(dirname -- "$out")"
input=(-framerate "$rate" -start_number "$start" -i "$frames_dir/frame_%04d.png" -frames:v "$count")

ffmpeg -nostdin -hide_banner -loglevel error -y "${input[@]}" \
  -filter_complex '[0:v]split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=3' \
  -loop 0 -- "$out.gif" || die "ffmpeg could not write $out.gif" 4

encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null) || die "ffmpeg -encoders failed (is ffmpeg installed?)" 4
if [[ "$encoders" =~ (^|$'\n')\ V[A-Z.]*\ libx264\  ]]; then
  codec=(-c:v libx264 -preset veryfast -crf 20)
  codec_name=h264
else
  codec=(-c:v mpeg4 -q:v 3)
  codec_name=mpeg4
fi
ffmpeg -nostdin -hide_banner -loglevel error -y "${input[@]}" \
  -vf 'pad=ceil(iw/2)*2:ceil(ih/2)*2' -pix_fmt yuv420p "${codec[@]}" -r "$rate" -movflags +faststart \
  -- "$out.mp4" || die "ffmpeg could not write $out.mp4" 4

probe() { # FILE: "frames,width,height,codec" of the first video stream, frames counted
  ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=nb_read_frames,width,height,codec_name -of csv=p=0 -- "$1"
}
gif_facts=$(probe "$out.gif") || die "ffprobe cannot read $out.gif" 4
mp4_facts=$(probe "$out.mp4") || die "ffprobe cannot read $out.mp4" 4
IFS=, read -r gif_codec gif_w gif_h gif_frames <<<"$gif_facts"
IFS=, read -r mp4_codec mp4_w mp4_h mp4_frames <<<"$mp4_facts"
[ "$gif_frames" = "$count" ] || die "$out.gif has $gif_frames frame(s), expected $count" 4
[ "$mp4_frames" = "$count" ] || die "$out.mp4 has $mp4_frames frame(s), expected $count" 4
[ "$mp4_codec" = "$codec_name" ] || die "$out.mp4 is $mp4_codec, expected $codec_name" 4

bytes() { stat -c %s -- "$1"; }
tmp="$out.json.tmp.$$"
printf '{\n  "frames": %d,\n  "frame_start": %d,\n  "frame_end": %d,\n  "fps": %d,\n  "seconds": %s,\n' \
  "$count" "$start" "$end" "$rate" "$(awk -v c="$count" -v r="$rate" 'BEGIN { printf "%.6g", c / r }')" >"$tmp"
printf '  "gif": { "path": "%s", "codec": "%s", "width": %d, "height": %d, "frames": %d, "bytes": %d },\n' \
  "$out.gif" "$gif_codec" "$gif_w" "$gif_h" "$gif_frames" "$(bytes "$out.gif")" >>"$tmp"
printf '  "mp4": { "path": "%s", "codec": "%s", "width": %d, "height": %d, "frames": %d, "bytes": %d }\n}\n' \
  "$out.mp4" "$mp4_codec" "$mp4_w" "$mp4_h" "$mp4_frames" "$(bytes "$out.mp4")" >>"$tmp"
mv -f -- "$tmp" "$out.json"
printf 'orbit-render encode: %d frames at %d fps: %s.gif (%dx%d), %s.mp4 (%s, %dx%d)\n' \
  "$count" "$rate" "$out" "$gif_w" "$gif_h" "$out" "$mp4_codec" "$mp4_w" "$mp4_h"
