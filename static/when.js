// The next digest's time in the browser's own zone, beside the reader's
// ("13:30 your browser's time"), where the two differ. Without
// JavaScript the page shows the reader's zone alone.
(function () {
  var els = document.querySelectorAll('time[datetime][data-zone]');
  Array.prototype.forEach.call(els, function (t) {
    try {
      var at = new Date(t.getAttribute('datetime'));
      var clock = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
      var day = { weekday: 'long' };
      var zone = t.getAttribute('data-zone');
      var mine = new Intl.DateTimeFormat('en-GB', clock).format(at);
      var theirs = new Intl.DateTimeFormat('en-GB', Object.assign({ timeZone: zone }, clock)).format(at);
      if (mine === theirs) return;
      var myDay = new Intl.DateTimeFormat('en-GB', day).format(at);
      var theirDay = new Intl.DateTimeFormat('en-GB', Object.assign({ timeZone: zone }, day)).format(at);
      var out = t.nextElementSibling;
      if (!out || out.className !== 'browser-time') return;
      out.textContent = ' (' + (myDay === theirDay ? '' : myDay + ' ') + mine + ' your browser\u2019s time)';
    } catch (e) {}
  });
})();
