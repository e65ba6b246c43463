// Pre-select the visitor's time zone when the list still shows the
// server's default. Without JavaScript the list works the same, showing
// the default until the visitor picks another zone.
(function () {
  var tz = document.getElementById('time_zone');
  try {
    if (tz && tz.value === tz.dataset.default) {
      var z = Intl.DateTimeFormat().resolvedOptions().timeZone;
      var known = z && Array.prototype.some.call(tz.options, function (o) { return o.value === z; });
      if (known) tz.value = z;
    }
  } catch (e) {}
})();
