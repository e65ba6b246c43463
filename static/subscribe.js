// Pre-fill the visitor's time zone when the field still holds the
// server's default; the field stays editable and the form works without
// JavaScript.
(function () {
  var tz = document.getElementById('time_zone');
  try {
    if (tz && tz.value === tz.dataset.default) {
      var z = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (z) tz.value = z;
    }
  } catch (e) {}
})();
