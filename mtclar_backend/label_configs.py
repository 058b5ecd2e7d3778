"""The two labelling configs the backend supports, ready to paste into a Label Studio project."""

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

CONFIGS = {"video": VIDEO, "frame": FRAME}
