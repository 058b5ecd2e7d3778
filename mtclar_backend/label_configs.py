"""The labelling configs the backend supports, ready to paste into a Label Studio project."""

VIDEO = """<View>
  <Video name="video" value="$video" frameRate="$fps" timelineHeight="120"/>
  <TimelineLabels name="segment" toName="video">
    <Label value="VA"/>
  </TimelineLabels>
  <Number name="valence" toName="video" perRegion="true" min="-1" max="1" step="0.01" slider="true"/>
  <Number name="arousal" toName="video" perRegion="true" min="-1" max="1" step="0.01" slider="true"/>
</View>"""

FRAME = """<View>
  <Image name="frame" value="$image"/>
  <Number name="valence" toName="frame" min="-1" max="1" step="0.01" slider="true"/>
  <Number name="arousal" toName="frame" min="-1" max="1" step="0.01" slider="true"/>
</View>"""

# Video mode with the predicted curve under the video and suggestions on the timeline. The Video and the
# TimeSeries share a sync group, so seeking either moves both; the backend writes the curve into the task's
# data field "curve" (valueType="json") whenever it predicts the task. "label me" regions mark the frames the
# backend would like labelled next; they are never read as labels.
VIDEO_CURVE = """<View>
  <Video name="video" value="$video" frameRate="$fps" timelineHeight="120" sync="va"/>
  <TimelineLabels name="segment" toName="video">
    <Label value="VA"/>
    <Label value="label me" background="#f5a623"/>
  </TimelineLabels>
  <Number name="valence" toName="video" perRegion="true" min="-1" max="1" step="0.01" slider="true"/>
  <Number name="arousal" toName="video" perRegion="true" min="-1" max="1" step="0.01" slider="true"/>
  <TimeSeries name="curve" value="$curve" valueType="json" timeColumn="time" sync="va" fixedScale="true"
              overviewWidth="100%">
    <MultiChannel height="130">
      <Channel column="valence" legend="valence" strokeColor="#1f77b4" strokeWidth="2"/>
      <Channel column="valence_low" legend="valence 80% low" strokeColor="#aec7e8"/>
      <Channel column="valence_high" legend="valence 80% high" strokeColor="#aec7e8"/>
    </MultiChannel>
    <MultiChannel height="130">
      <Channel column="arousal" legend="arousal" strokeColor="#d62728" strokeWidth="2"/>
      <Channel column="arousal_low" legend="arousal 80% low" strokeColor="#ff9896"/>
      <Channel column="arousal_high" legend="arousal 80% high" strokeColor="#ff9896"/>
    </MultiChannel>
  </TimeSeries>
</View>"""

CONFIGS = {"video": VIDEO, "video-curve": VIDEO_CURVE, "frame": FRAME}
